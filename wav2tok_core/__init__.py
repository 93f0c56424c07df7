"""wav2tok: a learned audio tokenizer for query-by-example search.

    from wav2tok_core import load_model
    strings = load_model("model.pt").tokenize(["a.wav", "b.wav"])
"""
from .config import FeatureConfig, ModelConfig
from .model import Wav2Tok, load_model

__all__ = ["FeatureConfig", "ModelConfig", "Wav2Tok", "load_model"]

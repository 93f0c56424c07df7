"""wav2tok: a learned audio tokenizer for query-by-example search.

    from wav2tok_core import load_model, TokenIndex
    model = load_model("model.pt")
    index = TokenIndex()
    index.add(["a", "b"], model.tokenize(["a.wav", "b.wav"]))
    hits = index.search(model.tokenize(["query.wav"]), k=5)

The package is layered; each folder imports only the ones before it (``tests/test_layers.py`` keeps it so):
base modules (errors, config, runtime, distributed) <- audio <- data <- model <- search <- eval <- train
<- workbench, cli.
"""
from .audio.config import FeatureConfig
from .errors import Wav2TokError
from .model.config import ModelConfig
from .model.wav2tok import Wav2Tok, load_model
from .search.index import Hit, TokenIndex

__all__ = ["FeatureConfig", "Hit", "ModelConfig", "TokenIndex", "Wav2Tok", "Wav2TokError", "load_model"]

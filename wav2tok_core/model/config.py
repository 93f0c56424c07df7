"""The network's config: encoder, projection and codebook (travels inside model checkpoints)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..audio.config import FeatureConfig
from ..config import require


@dataclass
class ModelConfig:
    """The wav2tok network: front end, encoder, projection and codebook (loss weights: ObjectiveConfig)."""

    features: FeatureConfig = field(default_factory=FeatureConfig)  # front end; sets input_dim
    use_transformer: bool = False  # Transformer encoder instead of the BiLSTM
    use_context: bool = True  # False: each frame is encoded alone (an MLP, no BiLSTM or Transformer), so equal
    #                           input frames get equal tokens: for features that already hold their context,
    #                           such as pitch_repr="intervals" (one token per note; the melody recipe)
    emb_dim: int = 256  # encoder output size (BiLSTM: emb_dim/2 per direction)
    num_layers: int = 2  # BiLSTM or Transformer layers
    dropout: float = 0.25  # between encoder layers
    nhead: int = 4  # Transformer attention heads (emb_dim must divide by it)
    num_tokens: int = 50  # codebook size K (reference examples use 50)
    temp: float = 0.1  # logits = cos(h, e) / temp, also in the matching softmax
    input_skip: float = 0.0  # > 0: each frame vector also holds the frame's input features, unit-normalised and
    #                          weighted by this: what the encoder learns adds to the features instead of replacing them
    keep_repeats: bool = False  # token strings keep one token per frame instead of collapsing repeats as the
    #                             paper does: edit distance then weighs each token by its duration

    def __post_init__(self) -> None:
        require(self.emb_dim >= 4 and self.emb_dim % 2 == 0, "emb_dim", f"{self.emb_dim} must be even and >= 4")
        require(self.num_layers >= 1, "num_layers", "must be >= 1")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.num_tokens >= 2, "num_tokens", f"{self.num_tokens} must be >= 2")
        require(math.isfinite(self.temp) and self.temp > 0, "temp", f"{self.temp} must be finite and > 0")
        require(math.isfinite(self.input_skip) and self.input_skip >= 0, "input_skip",
                f"{self.input_skip} must be finite and >= 0")
        require(self.use_context or not self.use_transformer, "use_context",
                "false asks for no sequence encoder, use_transformer for a Transformer: pick one")
        if self.use_transformer:
            require(self.emb_dim % self.nhead == 0, "nhead", f"emb_dim {self.emb_dim} must divide by {self.nhead}")

    @property
    def input_dim(self) -> int:
        """Encoder input size, derived from the feature config."""
        return self.features.dim

    @property
    def proj_dim(self) -> int:
        """Output size of the projection of the encoder frames."""
        return self.emb_dim // 2

    @property
    def code_dim(self) -> int:
        """Size of the space holding frame vectors h_t and codewords e_k: the projection, plus the input
        features with ``input_skip``."""
        return self.proj_dim + (self.input_dim if self.input_skip > 0 else 0)

    def fits_weights_of(self, other: "ModelConfig") -> bool:
        """Whether weights trained under ``other`` fit this config: everything but dropout and temp (which
        only shape training) and keep_repeats (which only shapes strings) must agree, so a model can be
        fine-tuned with another dropout or temp."""
        shaping_only = {"dropout": other.dropout, "temp": other.temp, "keep_repeats": other.keep_repeats}
        return dataclasses.replace(self, **shaping_only) == other

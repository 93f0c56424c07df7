"""The network's config: encoder, projection and codebook (travels inside model checkpoints)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..audio.config import FeatureConfig
from ..config import require


@dataclass
class ModelConfig:
    """The wav2tok network: encoder, projection, codebook and loss weights."""

    features: FeatureConfig = field(default_factory=FeatureConfig)  # front end; sets input_dim
    use_transformer: bool = False  # Transformer encoder instead of the BiLSTM
    emb_dim: int = 256  # encoder output size (BiLSTM: emb_dim/2 per direction)
    num_layers: int = 2  # BiLSTM or Transformer layers
    dropout: float = 0.25  # between encoder layers
    nhead: int = 4  # Transformer attention heads (emb_dim must divide by it)
    num_tokens: int = 50  # codebook size K (reference examples use 50)
    temp: float = 0.1  # logits = cos(h, e) / temp, also in the matching softmax
    alpha: float = 0.01  # weight of the CTC likelihood term X -> tokens(X') (reference README; 0.1 collapses)
    beta: float = 0.01  # weight of the CTC likelihood term X' -> tokens(X)
    use_cosine: bool = False  # matching loss scores prototypes by cosine instead of learned similarity
    triplet_margin: float = 1.0  # triplet mode: hinge margin, in nats per token (see losses.triplet_loss)
    diversity: float = 0.0  # weight of a codebook-usage entropy term (not in the paper; off by default): an
    #                         alternative guard against collapse for targets="online" (see README)
    diversity_per_clip: bool = True  # entropy of each clip's token usage (True) or of the whole batch's
    targets: str = "teacher"  # who assigns tokens in the M-step: "teacher" (a frozen copy of the model
    #                           taken at each E-step, as in EM) or "online" (the model being trained, as in
    #                           the reference code); see README for the measured difference

    def __post_init__(self) -> None:
        require(self.emb_dim >= 4 and self.emb_dim % 2 == 0, "emb_dim", f"{self.emb_dim} must be even and >= 4")
        require(self.num_layers >= 1, "num_layers", "must be >= 1")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.num_tokens >= 2, "num_tokens", f"{self.num_tokens} must be >= 2")
        require(math.isfinite(self.temp) and self.temp > 0, "temp", f"{self.temp} must be finite and > 0")
        require(self.alpha >= 0 and self.beta >= 0, "alpha/beta", "must be >= 0")
        require(self.triplet_margin >= 0, "triplet_margin", "must be >= 0")
        require(self.diversity >= 0, "diversity", "must be >= 0")
        require(self.targets in ("teacher", "online"), "targets", f"{self.targets!r} is not 'teacher' or 'online'")
        if self.use_transformer:
            require(self.emb_dim % self.nhead == 0, "nhead", f"emb_dim {self.emb_dim} must divide by {self.nhead}")

    @property
    def input_dim(self) -> int:
        """Encoder input size, derived from the feature config."""
        return self.features.dim

    @property
    def code_dim(self) -> int:
        """Size of the projected space holding frame vectors h_t and codewords e_k."""
        return self.emb_dim // 2

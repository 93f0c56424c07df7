"""What an evaluation runs: protocol, query conditions, methods and cut-offs (travels inside its report)."""
from __future__ import annotations

from dataclasses import dataclass

from ..audio.augment import STRETCH_METHODS
from ..errors import ConfigError
from .conditions import Condition
from .methods import method_names

PROTOCOLS = ("query_by_example", "query_vs_targets")  # see wav2tok_core.eval.protocol


@dataclass
class EvalConfig:
    """What to evaluate and how: see :mod:`wav2tok_core.eval.protocol` for the protocols,
    :mod:`~wav2tok_core.eval.conditions` for the conditions and :mod:`~wav2tok_core.eval.methods` for the methods."""

    protocol: str = "query_by_example"  # or "query_vs_targets" (role "query" items search role "target" items)
    conditions: tuple[str, ...] = ("vanilla", "stretch0.8", "stretch1.25", "shift-3", "shift+3")  # query
    #                              transformations as in the paper; the database is never transformed
    stretch_method: str = "vocoder"  # how stretches and shifts are rendered: "vocoder" (phase vocoder, as in
    #                                  training) or "wsola" (leaves a voice's periods intact; the melody results)
    methods: tuple[str, ...] = ("wav2tok", "dtw-mfcc", "dtw-logmel", "vq-logmel", "vq-mfcc")  # registered names;
    #                           add "raw-encoder" to see what training buys
    cross_speaker: bool = False  # exclude database entries of the query's own speaker
    ks: tuple[int, ...] = (1, 5)  # hit@k cut-offs
    max_queries: int | None = None  # evaluate an evenly spaced subset of this many queries (None: all)
    batch_size: int = 32  # clips per tokenizer / feature batch
    seed: int = 0  # k-means of the vq baselines; initialisation and E-step of the raw encoder
    consistency_pairs: int = 1000  # cross-speaker token consistency of the model's tokens over this many
    #                                same-label and as many different-label pairs (0: skip the diagnostic)

    def __post_init__(self) -> None:
        self.conditions, self.methods, self.ks = tuple(self.conditions), tuple(self.methods), tuple(self.ks)
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol: {self.protocol!r} is not one of {PROTOCOLS}")
        for name, values in (("conditions", self.conditions), ("methods", self.methods)):
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"{name}: must be non-empty and without repeats, got {list(values)}")
        known = method_names()
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise ConfigError(f"methods: unknown {unknown}; known methods: {list(known)}")
        self.parsed_conditions()
        if self.stretch_method not in STRETCH_METHODS:
            raise ConfigError(f"stretch_method: {self.stretch_method!r} is not one of {STRETCH_METHODS}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks: must be positive cut-offs, got {list(self.ks)}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError("max_queries: must be >= 1 (or None for all queries)")
        if self.batch_size < 1:
            raise ConfigError("batch_size: must be >= 1")
        if self.consistency_pairs < 0:
            raise ConfigError("consistency_pairs: must be >= 0")

    def parsed_conditions(self) -> list[Condition]:
        return [Condition.parse(name) for name in self.conditions]

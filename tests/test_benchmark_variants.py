"""The results scripts' ``--variant`` / ``--variants`` overrides (benchmarks/seed_runs.parse_variant)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from seed_runs import parse_variant  # noqa: E402


def test_a_variant_is_training_flags_with_yaml_values() -> None:
    assert parse_variant("recipe") == {}
    assert parse_variant("pitch_repr=notes,use_context=false,num_tokens=50,temp=0.05") == {
        "pitch_repr": "notes", "use_context": False, "num_tokens": 50, "temp": 0.05}
    assert parse_variant("aug_vtlp=[0.85,1.15],perturbed_pairs=0.5") == {"aug_vtlp": [0.85, 1.15],
                                                                          "perturbed_pairs": 0.5}


@pytest.mark.parametrize("text", ["no_such_flag=1", "pitch_repr", "temp=0.1,=3"])
def test_a_bad_variant_is_refused_by_name(text: str) -> None:
    with pytest.raises(SystemExit, match="is not flag=value with a training flag"):
        parse_variant(text)

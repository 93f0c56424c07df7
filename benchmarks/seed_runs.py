"""Shared by the README's results scripts: train one recipe per seed, evaluate each model, report mean ± sd.

Each seed trains from scratch (weights, pair sampling and augmentation all follow the seed), keeps the
model early stopping chose (``best.pt``) and runs the evaluation protocol on it. Per seed: the markdown
tables on stdout and ``OUT/results_seed{N}.json|md``. Over seeds: ``OUT/summary.json`` and a table of MRR
per report group as mean ± sample sd (0 with one seed; methods without training, such as DTW over fixed
features, have sd 0).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from wav2tok_core.data.manifest import ManifestItem
from wav2tok_core.eval.conditions import GROUPS
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.eval.protocol import evaluate
from wav2tok_core.model.wav2tok import load_model
from wav2tok_core.runtime import write_json
from wav2tok_core.train.recipe import FLAGS, recipe_spec, run


def parse_variant(text: str) -> dict[str, Any]:
    """``"temp=0.05,iter_clust=25"`` -> ``{"temp": 0.05, "iter_clust": 25}``; ``"recipe"`` -> ``{}``. A value may be
    a YAML list (``"aug_vtlp=[0.85,1.15]"``): commas inside brackets do not separate flags."""
    if text == "recipe":
        return {}
    overrides = {}
    for part in re.split(r",(?![^\[]*\])", text):
        key, sep, value = part.partition("=")
        if not sep or key not in FLAGS:
            raise SystemExit(f"variant {text!r}: {part!r} is not flag=value with a training flag")
        overrides[key] = yaml.safe_load(value)
    return overrides


def run_seeds(recipe: Path, overrides: dict[str, Any], manifest: Path, test: Sequence[ManifestItem],
              train: Sequence[ManifestItem], eval_config: Callable[[int], EvalConfig], seeds: Sequence[int],
              out: Path, threads: int | None = None) -> dict[str, Any]:
    """Train the recipe file ``recipe`` (``configs/*.yaml``) with ``overrides`` (flag names) on ``manifest``
    once per seed and evaluate on ``test``.

    ``eval_config(seed)`` gives each seed's protocol; baselines that need fitting use ``train``.
    Returns the summary written to ``out / "summary.json"``.
    """
    per_seed = []
    for seed in seeds:
        options = {**overrides, "dataset": str(manifest), "seed": seed, "save_dir": str(out / "weights"),
                   "name": f"seed{seed}", "progress": False}
        if threads:
            options["threads"] = threads
        trainer = run(recipe_spec(recipe, **options))
        result = evaluate(load_model(trainer.run_dir / "best.pt"), test, train, eval_config(seed))
        result.save(out / f"results_seed{seed}.json", out / f"results_seed{seed}.md")
        print(f"## seed {seed} (trained {trainer.epoch} epochs)\n\n{result.to_markdown()}\n", flush=True)
        per_seed.append({m: {**result.group_mrr(m), "ms_per_query": result.costs[m].search_ms_per_query}
                         for m in result.methods})
    keys = (*GROUPS, "ms_per_query")
    values = {m: {k: [s[m][k] for s in per_seed] for k in keys} for m in per_seed[0]}
    mean = {m: {k: float(np.mean(v)) for k, v in row.items()} for m, row in values.items()}
    sd = {m: {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in row.items()} for m, row in values.items()}
    summary = {"seeds": list(seeds), "recipe": str(recipe), "overrides": overrides, "mean": mean, "sd": sd, "per_seed": per_seed}
    write_json(out / "summary.json", summary)
    print(f"MRR, mean ± sd over {len(seeds)} seed(s):")
    print("| method | vanilla | stretched | shifted | ms/query |\n|---|---:|---:|---:|---:|")
    for m, row in mean.items():
        cells = " | ".join(f"{row[g]:.3f} ± {sd[m][g]:.3f}" for g in GROUPS)
        print(f"| {m} | {cells} | {row['ms_per_query']:.3f} |")
    return summary

"""The numbered notebooks: clean in git, parameterised for papermill, and runnable end to end."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from wav2tok_core.errors import NotebookError
from wav2tok_core.config import load_config_file
from wav2tok_core.workbench.pipeline import NOTEBOOKS, notebook_parameters, run_pipeline
from wav2tok_core.workbench.runs import asset

NOTEBOOK_DIR = asset("notebooks")
CI_PARAMS = NOTEBOOK_DIR / "params" / "ci.yaml"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    book = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name} has outputs: clear them"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_are_typed_and_commented(name: str) -> None:
    params = pm.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert "run_dir" in params
    for spec in params.values():
        assert spec["inferred_type_name"] != "None" and spec["help"], f"{name}: {spec['name']} needs a type and comment"


def read(run: Path, stage: str, name: str = "results.json") -> dict:
    return json.loads((run / stage / name).read_text())


def test_all_notebooks_run_headlessly_and_record_results(tmp_path, monkeypatch) -> None:
    """The main job from a working folder that is not the workbench home; then every notebook again as
    JupyterLab runs it: from notebooks/, with the relative run_dir of the parameters."""
    monkeypatch.setenv("WAV2TOK_HOME", str(tmp_path / "home"))  # relative paths resolve here (kernels inherit it)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "home" / "run"
    timings = run_pipeline(CI_PARAMS, "run", cell_timeout=900, cwd=elsewhere)  # a hung cell fails, not CI
    assert not list(elsewhere.iterdir())  # nothing written relative to the kernel's folder
    assert list(timings) == list(NOTEBOOKS)
    assert {p.name for p in (run / "notebooks").glob("*.ipynb")} == {f"{n}.ipynb" for n in NOTEBOOKS}

    data = read(run, "01_data")
    assert data["summary"]["n_items"] == 12 * (1 + 3) and not data["summary"]["unreadable"]
    assert (run / "01_data" / "manifest.json").is_file() and (run / "01_data" / "melodies.bin").is_file()

    train = read(run, "02_train")
    assert train["epochs"] == 2 and train["steps"] > 0 and Path(train["model"]).is_file()
    assert 0.0 <= train["best_val_mrr"] <= 1.0
    assert {"train/loss", "train/matching", "train/ctc_xy", "val/mrr"} <= set(train["history"][-1])

    codebook = read(run, "03_codebook")
    assert 1.0 <= codebook["perplexity"] <= 16 and codebook["tokens_per_clip"] >= 1
    assert {"umap_by_token.png", "umap_by_class.png", "token_usage.png"} <= set(codebook["figures"])

    evaluation = read(run, "04_eval")
    for method in ("wav2tok", "dtw-mfcc"):
        assert 0.0 < evaluation["summary"][method]["mrr"]["vanilla"] <= 1.0
    assert (run / "04_eval" / "results.md").is_file()
    spotting = read(run, "04_eval", "spotting.json")
    assert spotting["format"] == "wav2tok-spotting" and set(spotting["methods"]) == {"wav2tok", "sdtw-pitch", "sdtw-mfcc"}
    assert (run / "04_eval" / "spotting_example.png").stat().st_size > 10_000

    executed = nbformat.read(run / "notebooks" / "05_token_inspector.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert any("interactive inspector is built only" in o.get("text", "") for o in outputs)  # headless: no widget

    inspector = read(run, "05_inspector")
    assert inspector["tokens"] and len(inspector["neighbours"]) == 3
    spotted = inspector["spotted"]
    assert spotted["query"] != spotted["recording"] and spotted["true_span_s"][0] < spotted["true_span_s"][1]
    assert (run / "05_inspector" / "spotting.png").stat().st_size > 10_000
    for png in ("01_data/durations.png", "02_train/training_curves.png", "05_inspector/inspector_static.png"):
        assert (run / png).stat().st_size > 10_000, png

    before = sorted(p.relative_to(NOTEBOOK_DIR) for p in NOTEBOOK_DIR.rglob("*"))
    executed = tmp_path / "from_notebooks"
    executed.mkdir()
    for name in NOTEBOOKS:  # default run_dir-style relative paths, kernel in notebooks/ as in JupyterLab
        params = notebook_parameters(load_config_file(CI_PARAMS), name, Path("run"), NOTEBOOK_DIR / f"{name}.ipynb")
        assert params["run_dir"] == "run"
        pm.execute_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"), str(executed / f"{name}.ipynb"), parameters=params,
                            cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False, execution_timeout=900)
    assert sorted(p.relative_to(NOTEBOOK_DIR) for p in NOTEBOOK_DIR.rglob("*")) == before  # no notebooks/run/
    assert read(run, "05_inspector")["tokens"] and (run / "02_train" / "model.pt").is_file()


def fake_notebook_dir(tmp_path: Path, body: str) -> Path:
    """A notebook folder whose 01_data_split is a parameters cell and then ``body``."""
    book = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_dir: str = "runs/x"  # where results go')
    params.metadata["tags"] = ["parameters"]
    book.cells = [params, nbformat.v4.new_code_cell(body)]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(book, folder / "01_data_split.ipynb")
    return folder


def test_a_cell_that_outlives_the_timeout_stops_the_run_naming_notebook_and_cell(tmp_path) -> None:
    folder = fake_notebook_dir(tmp_path, "import time\ntime.sleep(600)")
    with pytest.raises(NotebookError, match=r"notebook 01_data_split: cell \d+ \('import time'\) did not finish "
                                            r"within 3 s"):
        run_pipeline(None, tmp_path / "run", only=["01_data_split"], notebook_dir=folder, cell_timeout=3)


def test_a_failing_cell_stops_the_run_in_one_line(tmp_path) -> None:
    folder = fake_notebook_dir(tmp_path, "raise ValueError('boom')")
    with pytest.raises(NotebookError, match=r"notebook 01_data_split failed in cell \d+ .*ValueError: boom") as err:
        run_pipeline(None, tmp_path / "run", only=["01_data_split"], notebook_dir=folder)
    assert "\n" not in str(err.value) and (tmp_path / "run" / "notebooks" / "01_data_split.ipynb").is_file()

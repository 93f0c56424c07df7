"""The token inspector: pick a clip, hear it, see its tokens over the spectrogram, change the
augmentation, and compare with its nearest neighbours in an index.

:class:`TokenInspector` holds all the logic and is tested without a browser; :func:`inspector_widget`
only lays it out with ipywidgets (imported on call, so the core install does not need it).
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Sequence

import soundfile as sf
import torch
from matplotlib.figure import Figure
from rapidfuzz.distance import Levenshtein

from ..audio.augment import pitch_shift, time_stretch
from ..data.manifest import ManifestItem
from ..model.tokens import token_string
from ..model.wav2tok import Wav2Tok
from ..search.index import Hit, TokenIndex, encode_tokens
from .viz import figure_png, tokens_over_spectrogram

GAP = "·"


def audio_player(wave: torch.Tensor, sr: int) -> str:
    """An HTML ``<audio>`` element holding ``wave`` ``(N,)`` as an embedded 16-bit WAV."""
    buffer = io.BytesIO()
    sf.write(buffer, wave.detach().cpu().numpy(), sr, format="WAV", subtype="PCM_16")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<audio controls preload='none' src='data:audio/wav;base64,{data}'></audio>"


def align_tokens(a: Sequence[int], b: Sequence[int]) -> tuple[list[str], list[str]]:
    """Levenshtein alignment of two token strings as two equally long rows (``·`` marks a gap)."""
    row_a: list[str] = []
    row_b: list[str] = []
    for op in Levenshtein.opcodes(encode_tokens(a), encode_tokens(b)):
        left = [str(t) for t in a[op.src_start : op.src_end]]
        right = [str(t) for t in b[op.dest_start : op.dest_end]]
        width = max(len(left), len(right))
        row_a += left + [GAP] * (width - len(left))
        row_b += right + [GAP] * (width - len(right))
    return row_a, row_b


@dataclass
class Neighbour:
    """An index entry near the inspected clip, with both strings aligned."""

    hit: Hit  # hit.id: the clip's path
    label: str | None
    tokens: list[int]
    aligned_query: list[str]
    aligned_match: list[str]


@dataclass
class InspectorView:
    """Everything shown for one clip under one augmentation."""

    item: ManifestItem
    wave: torch.Tensor  # (N,) at the model's rate, augmented
    frame_tokens: list[int]  # (T,)
    note_starts: list[bool]  # (T,) where a note starts (all False for frame-level features)
    tokens: list[int]  # the model's token string (collapsed unless it keeps repeats)
    neighbours: list[Neighbour]
    stretch: float = 1.0  # time-stretch rate applied (> 1 faster)
    shift: float = 0.0  # pitch shift applied, semitones

    @property
    def token_string(self) -> str:
        return " ".join(map(str, self.tokens))


class TokenInspector:
    """Tokenize manifest clips on demand, optionally with time stretch / pitch shift, and look up
    neighbours in ``index`` (built with item ids = clip paths as strings)."""

    def __init__(self, model: Wav2Tok, items: Sequence[ManifestItem], index: TokenIndex | None = None,
                 k: int = 5) -> None:
        if not items:
            raise ValueError("the inspector needs at least one clip")
        self.model, self.items, self.index, self.k = model.eval(), list(items), index, k
        self.sr = model.config.features.sr
        self.hop_s = model.config.features.frame_s

    def labels(self) -> list[str]:
        """Dropdown labels: ``"i: file (label)"``, in full."""
        return [f"{i}: {it.path.name} ({it.label})" for i, it in enumerate(self.items)]

    def view(self, index: int, stretch: float = 1.0, shift: float = 0.0) -> InspectorView:
        """Tokens and neighbours of clip ``index`` after a time stretch (rate) and pitch shift (semitones)."""
        item = self.items[index]
        wave = self.model.load_clips([item.path])[0]
        if shift:
            wave = pitch_shift(wave, shift)
        if stretch != 1.0:
            wave = time_stretch(wave, stretch)
        frames, starts = self.model.frame_tokens_and_starts([wave])[0]
        tokens = token_string(frames, self.model.config.keep_repeats, starts)
        return InspectorView(item, wave, frames.tolist(), starts.tolist(), tokens,
                             self.neighbours(tokens, exclude=str(item.path)), stretch, shift)

    def neighbours(self, tokens: list[int], exclude: str | None = None) -> list[Neighbour]:
        """Top-k index entries for ``tokens`` (the clip itself excluded), strings aligned."""
        if self.index is None or len(self.index) == 0:
            return []
        hits = self.index.search([tokens], k=self.k, exclude_ids=[{exclude}] if exclude else None)[0]
        out = []
        for hit in hits:
            match = self.index.tokens(hit.id)
            row_q, row_m = align_tokens(tokens, match)
            out.append(Neighbour(hit, self.index.metadata(hit.id).get("label"), match, row_q, row_m))
        return out

    def figure(self, view: InspectorView) -> Figure:
        """The view's tokens over its spectrogram, titled with the clip, its label and the augmentation applied
        (a figure outside pyplot: show it with ``display`` or :func:`~wav2tok_core.workbench.viz.figure_png`)."""
        applied = f"time stretch x{view.stretch:g}, pitch shift {view.shift:+g} semitones"
        title = f"{view.item.path.name}  (label {view.item.label}; {applied}; {len(view.tokens)} tokens)"
        return tokens_over_spectrogram(view.wave, self.sr, view.frame_tokens, self.hop_s,
                                       self.model.config.num_tokens, title, view.note_starts)

    def neighbours_html(self, view: InspectorView, players: bool = True) -> str:
        """An HTML table of the neighbours: per neighbour its rank, file, label, score and (with ``players``)
        an audio player, then two aligned rows, the query's string and the neighbour's (mismatches in bold)."""
        rows = []
        for n in view.neighbours:
            cells = "".join(
                f"<td>{'<b>' + html.escape(m) + '</b>' if q != m else html.escape(m)}</td>"
                for q, m in zip(n.aligned_query, n.aligned_match))
            query = "".join(f"<td>{html.escape(q)}</td>" for q in n.aligned_query)
            path = str(n.hit.id)
            player = audio_player(self.model.load_clips([path])[0], self.sr) if players else ""
            rows.append(f"<tr><th rowspan=2 style='text-align:left'>#{n.hit.rank} {html.escape(path.rsplit('/', 1)[-1])}"
                        f"<br>label {html.escape(str(n.label))}, score {n.hit.score:.2f}<br>{player}</th>"
                        f"<td><i>query</i></td>{query}</tr><tr><td><i>neighbour</i></td>{cells}</tr>")
        if not rows:
            return "<p>No index loaded, or it is empty.</p>"
        caption = (f"Nearest clips to {html.escape(view.item.path.name)} (string: {html.escape(view.token_string)}). "
                   "Score: edit similarity, 1 - normalised Levenshtein distance of the token strings; 1 = identical, "
                   "higher = closer. Each neighbour shows the query's string and its own, aligned.")
        return (f"<table style='font-family:monospace;font-size:11px'><caption style='text-align:left'>{caption}"
                f"</caption>{''.join(rows)}</table>")


def inspector_widget(inspector: TokenInspector):
    """Lay the inspector out with ipywidgets: dropdown, stretch/shift sliders, audio, figure, neighbours."""
    import ipywidgets as w
    from IPython.display import Audio, Image, display

    wide = {"description_width": "initial"}
    clip = w.Dropdown(options=[(label, i) for i, label in enumerate(inspector.labels())], description="clip",
                      layout=w.Layout(width="auto", min_width="22em"), style=wide)
    stretch = w.FloatSlider(value=1.0, min=0.7, max=1.4, step=0.05, description="time stretch (rate)", style=wide)
    shift = w.FloatSlider(value=0.0, min=-6, max=6, step=0.5, description="pitch shift (semitones)", style=wide)
    out = w.Output()

    def render(_=None) -> None:
        view = inspector.view(clip.value, stretch.value, shift.value)
        png = figure_png(inspector.figure(view))  # drawn completely before anything is shown
        table = inspector.neighbours_html(view)
        with out:
            out.clear_output(wait=True)
            display(Audio(view.wave.numpy(), rate=inspector.sr))
            display(Image(data=png))
            display(w.HTML(table))

    for control in (clip, stretch, shift):
        control.observe(render, names="value")
    render()
    return w.VBox([w.HBox([clip, stretch, shift]), out])

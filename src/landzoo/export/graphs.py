"""Self-contained graphs of a trained model: ONNX, TorchScript and ``torch.export`` (``.pt2``), each parity-checked.

Two input layouts (:data:`INPUTS`):

* ``"groups"`` (default): the raw band groups at their native resolution, one graph input per group, named as
  the group (``10m``: ``float32[batch, 4, 120, 120]``, ``20m``: ``float32[batch, 6, 60, 60]`` for the paper's 10
  BigEarthNet bands), values as read from the files (Sentinel-2 digital numbers, Sentinel-1 dB) cast to float32.
  Normalisation, TF-exact bicubic resampling and band stacking are inside the graph: nothing to reimplement.
* ``"stacked"``: one input ``input``, ``float32[batch, C, S, S]``, already normalised and resampled to the
  model's input size, bands in the contract's channel order: the bare network, as timm builds it.

Outputs: ``logits`` and ``probabilities`` (sigmoid), ``float32[batch, num_classes]`` in the contract's class
order. The batch size is dynamic; spatial sizes are fixed (the resampling matrices are constants).

Every file is checked before it is kept: it is loaded back with the ecosystem's own loader
(``onnxruntime.InferenceSession``, ``torch.jit.load``, ``torch.export.load``) and run on seeded inputs drawn from
the contract's band statistics at two batch sizes; the largest absolute difference from the PyTorch model is
reported, and above ``tolerance`` the export fails and the file is not written (:func:`landzoo.files.atomic_write`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landzoo import contract
from landzoo.errors import LandzooError
from landzoo.files import atomic_write

__all__ = [
    "FORMATS",
    "GRAPH_FILES",
    "INPUTS",
    "ExportError",
    "GraphRecord",
    "GraphSpec",
    "export_graphs",
    "graph_spec",
    "native_group_px",
]

#: Graph formats and the file each is written to.
GRAPH_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "torch-export": "model.pt2"}
FORMATS = tuple(GRAPH_FILES)
#: Input layouts a graph can take.
INPUTS = ("groups", "stacked")
#: Batch sizes of the parity check (the graphs are traced at batch 2: both differ, so a fixed batch fails).
CHECK_BATCHES = (1, 3)
OUTPUTS = ("logits", "probabilities")


class ExportError(LandzooError):
    """A graph that cannot be written, or that computes something else than the PyTorch model."""


@dataclass(frozen=True)
class GraphSpec:
    """The inputs of a graph: name -> (band names, side in pixels); ``normalised`` for the stacked layout."""

    layout: str
    inputs: Mapping[str, tuple[tuple[str, ...], int]]

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready description of each input (for config.json and the model card)."""
        raw = self.layout == "groups"
        return [
            {
                "name": name,
                "shape": ["batch", len(bands), px, px],
                "dtype": "float32",
                "bands": list(bands),
                "values": "raw (S2 digital numbers, S1 dB)" if raw else "normalised (x - mean) / std, resampled",
            }
            for name, (bands, px) in self.inputs.items()
        ]

    def example(self, batch: int, stats: Mapping[str, tuple[float, float]], seed: int) -> tuple[Tensor, ...]:
        """Seeded inputs: raw values drawn from each band's mean/std (clipped at 0 for S2), or normal for stacked."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for bands, px in self.inputs.values():
            x = torch.randn(batch, len(bands), px, px, generator=g)
            if self.layout == "groups":
                mean = torch.tensor([stats[b][0] for b in bands]).view(1, -1, 1, 1)
                std = torch.tensor([stats[b][1] for b in bands]).view(1, -1, 1, 1)
                x = x * std + mean
                s2 = torch.tensor([contract.BANDS[b].sensor == "S2" for b in bands]).view(1, -1, 1, 1)
                x = torch.where(s2, x.clamp(min=0), x)
            out.append(x.contiguous())
        return tuple(out)


@dataclass(frozen=True)
class GraphRecord:
    """What was written and how closely it matches PyTorch."""

    format: str
    path: Path
    max_abs_diff: float
    tolerance: float
    batches: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.path.name,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "checked_batches": list(self.batches),
        }


def native_group_px(groups: Mapping[str, Sequence[str]], *, native: bool, input_size: int) -> dict[str, int]:
    """Side in pixels of each band group as the data delivers it: a BigEarthNet patch (1200 m) at the group's
    resolution when the model is fed native groups; else (every band on one 10 m grid, as SEN12MS and EuroSAT
    ship them, in patches of any size) the model's input size, so that the graph resamples nothing."""
    if not native:
        return {g: int(input_size) for g in groups}
    return {g: contract.BANDS[bands[0]].ben_patch_px for g, bands in groups.items()}


def graph_spec(
    model: nn.Module,
    layout: str = "groups",
    *,
    native: bool = True,
    group_px: Mapping[str, int] | None = None,
) -> GraphSpec:
    """The input spec of ``model`` (a :class:`~landzoo.models.LandCoverModel`) for ``layout``.

    ``native``: the contract's band grouping (:attr:`landzoo.checkpoint.DataContract.native`); ``group_px``
    overrides the side of a group (e.g. ``{"10m": 256}`` for whole SEN12MS tiles).
    """
    if layout not in INPUTS:
        raise ExportError(f"unknown input layout {layout!r}; choose one of {', '.join(INPUTS)}")
    if layout == "stacked":
        if group_px:
            raise ExportError("a stacked input has the model's own size; group sizes apply to the groups layout")
        return GraphSpec("stacked", {"input": (tuple(model.bands), model.input_size)})
    groups = model.transform.groups
    px = native_group_px(groups, native=native, input_size=model.input_size)
    for g, side in (group_px or {}).items():
        if g not in px:
            raise ExportError(f"the model has no band group {g!r}; its groups are {', '.join(px)}")
        if int(side) < 1:
            raise ExportError(f"band group {g}: the side in pixels must be positive, not {side}")
        px[g] = int(side)
    return GraphSpec("groups", {g: (tuple(bands), px[g]) for g, bands in groups.items()})


class _Graph(nn.Module):
    """The model with positional tensor inputs (what ONNX and tracing need) and both outputs."""

    def __init__(self, model: nn.Module, spec: GraphSpec) -> None:
        super().__init__()
        self.model = model
        self.names = list(spec.inputs)
        self.stacked = spec.layout == "stacked"

    def forward(self, *xs: Tensor) -> tuple[Tensor, Tensor]:
        # the model's own two stages (normalise + resample, then the network), without its eager input checks
        x = xs[0] if self.stacked else self.model.transform(dict(zip(self.names, xs, strict=True)))
        logits = self.model.backbone(x)
        return logits, torch.sigmoid(logits)


def _dynamic_batch(spec: GraphSpec) -> tuple[tuple[dict[int, Any], ...]]:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    return (tuple({0: batch} for _ in spec.inputs),)


class _Tracing:
    """One model being exported: the traced example, and ``torch.export``'s program shared by ONNX and ``.pt2``."""

    def __init__(self, graph: _Graph, spec: GraphSpec, example: tuple[Tensor, ...]) -> None:
        self.graph, self.spec, self.example = graph, spec, example
        self._program: Any = None

    def program(self) -> Any:
        if self._program is None:
            self._program = torch.export.export(self.graph, self.example, dynamic_shapes=_dynamic_batch(self.spec))
        return self._program


def _write_onnx(t: _Tracing, path: Path) -> None:
    # from torch.export's program (the exporter torch supports); onnxscript's graph optimiser is skipped: it
    # doubles the export time and onnxruntime applies the same constant folding and fusions when it loads the file
    onnx_program = torch.onnx.export(
        t.program(),
        input_names=list(t.spec.inputs),
        output_names=list(OUTPUTS),
        optimize=False,
        verbose=False,
    )
    onnx_program.save(str(path))
    _name_batch_dim(path)


def _name_batch_dim(path: Path) -> None:
    """Call the symbolic batch dimension ``batch`` (torch names it after an internal symbol such as ``s31``)."""
    import onnx

    model = onnx.load(str(path))
    symbols = {vi.type.tensor_type.shape.dim[0].dim_param for vi in model.graph.input} - {""}
    for vi in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in vi.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = "batch"
    onnx.save(model, str(path))


def _run_onnx(path: Path, spec: GraphSpec) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != list(spec.inputs):
        raise ExportError(f"{path.name}: the graph's inputs are {names}, expected {list(spec.inputs)}")
    return lambda xs: session.run(list(OUTPUTS), {n: x.numpy() for n, x in zip(names, xs, strict=True)})


def _write_torchscript(t: _Tracing, path: Path) -> None:
    traced = torch.jit.trace(t.graph, t.example, check_trace=False)
    torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, spec: GraphSpec) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]]:
    loaded = torch.jit.load(str(path), map_location="cpu")
    return lambda xs: [x.numpy() for x in loaded(*xs)]


def _write_torch_export(t: _Tracing, path: Path) -> None:
    buffer = io.BytesIO()  # torch.export wants a name ending in .pt2, which the temporary file's is not
    torch.export.save(t.program(), buffer)
    path.write_bytes(buffer.getvalue())


def _run_torch_export(path: Path, spec: GraphSpec) -> Callable[[tuple[Tensor, ...]], list[np.ndarray]]:
    module = torch.export.load(io.BytesIO(path.read_bytes())).module()
    return lambda xs: [x.numpy() for x in module(*xs)]


_WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript, "torch-export": _write_torch_export}
_RUNNERS = {"onnx": _run_onnx, "torchscript": _run_torchscript, "torch-export": _run_torch_export}


def _first_line(err: BaseException) -> str:
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:400]


def export_graphs(
    model: nn.Module,
    formats: Sequence[str],
    dest: str | Path,
    spec: GraphSpec,
    *,
    stats: Mapping[str, tuple[float, float]],
    tolerance: float = 1e-4,
    batches: Sequence[int] = CHECK_BATCHES,
) -> Iterator[GraphRecord]:
    """Write ``model`` (put in eval mode on the CPU) in each of ``formats`` into folder ``dest``; yield the record
    of each file once it is checked against PyTorch (see the module docstring). A failed check raises
    :class:`ExportError` and leaves no file behind."""
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ExportError(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    model = model.eval().to("cpu")
    graph = _Graph(model, spec).eval()
    example = spec.example(2, stats, seed=0)
    checks = [spec.example(b, stats, seed=1 + i) for i, b in enumerate(batches)]
    with torch.no_grad():
        graph(*example)  # eager first: resampling matrices are cached as real tensors before any tracing
        expected = [[x.numpy() for x in graph(*xs)] for xs in checks]
    tracing = _Tracing(graph, spec, example)
    for fmt in formats:
        path = Path(dest) / GRAPH_FILES[fmt]
        worst = [0.0]

        def write_and_check(tmp: Path, fmt: str = fmt, path: Path = path, worst: list[float] = worst) -> None:
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")  # exporters' deprecation and tracer chatter: the check decides
                    _WRITERS[fmt](tracing, tmp)
                    run = _RUNNERS[fmt](tmp, spec)
                    got = [run(xs) for xs in checks]
            except ExportError:
                raise
            except Exception as err:  # an exporter that cannot handle this architecture: one line naming it
                name = getattr(model, "name", "") or type(model.backbone).__name__
                raise ExportError(f"{fmt} export of {name} failed: {_first_line(err)}") from None
            for b, want, have in zip(batches, expected, got, strict=True):
                for out, w, h in zip(OUTPUTS, want, have, strict=True):
                    if tuple(h.shape) != tuple(w.shape):
                        raise ExportError(
                            f"{path.name}: {out} has shape {list(h.shape)} at batch {b}, expected {list(w.shape)}"
                        )
                    diff = np.abs(h.astype(np.float64) - w.astype(np.float64))
                    worst[0] = max(worst[0], float(np.max(diff, initial=0.0)))
            if not worst[0] <= tolerance:
                raise ExportError(
                    f"{path.name}: max |{fmt} - PyTorch| = {worst[0]:.3g} exceeds the tolerance {tolerance:g}; "
                    "not written"
                )

        atomic_write(path, write_and_check)
        yield GraphRecord(fmt, path, worst[0], tolerance, tuple(batches))

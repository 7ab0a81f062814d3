"""The paper's experiments as pictures, on synthetic test faces with their ground truth.

Fig. 5 (mouth), Fig. 6 (eyes, brows, nose and mouth together: the `components` region) and Fig. 7 (the whole face):
source, exemplar, mask, ground truth and every model's edit. Fig. 8: Att-EBGAN keeps the exemplar's mouth and filters
out one of its attributes (the Mustache by default), on exemplars that have it, beside the ground truth with and
without it. The numbers that go with the pictures are `ebgan-eval`'s on the same pairs. With an exported model that has
`edit_composed`, one more picture: each source's eyes, mouth and nose from three other faces in one composed edit, at
strengths from 0 (the source's own parts, as the model reconstructs them) to 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ebgan_tf import images, visualize
from ebgan_tf.config import ATT_EBGAN, parse_regions
from ebgan_tf.editing import EDIT_COMPOSED, Editor
from ebgan_tf.evaluation.evaluate import open_models
from ebgan_tf.evaluation.methods import Method, method_names
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, load_pairs, region_masks

# (file name, region, title) of the grids that show one region's transfer.
TRANSFER_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("fig5_mouth.png", "mouth", "Fig. 5: mouth"),
    ("fig6_components.png", "components", "Fig. 6: eyes, brows, nose and mouth"),
    ("fig7_face.png", "face", "Fig. 7: the whole face"),
)
FILTER_FIGURE = "fig8_filter_{attribute}.png"
COMPOSED_FIGURE = "composed_strengths.png"
# (region, exemplar) of each part of the composed figure: the exemplar of row i's part is test face i + offset.
COMPOSED_PARTS: tuple[tuple[str, int], ...] = (("eyes", 1), ("mouth", 2), ("nose", 3))
COMPOSED_STRENGTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
DISPLAY_SIZE = 128  # px per cell: the 64 px faces are enlarged (nearest neighbour) to be seen


def _enlarge(image: np.ndarray) -> np.ndarray:
    factor = max(1, DISPLAY_SIZE // image.shape[0])
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _edits(
    method: Method, sources: np.ndarray, exemplars: np.ndarray, masks: np.ndarray, attributes: np.ndarray | None = None
) -> np.ndarray:
    """uint8 edits of one batch of pairs."""
    edited = method.edit(images.to_float(sources), images.to_float(exemplars), masks, attributes)
    return images.to_uint8(np.asarray(edited, np.float32))


def _grid(columns: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
    """Rows of the pairs; columns are uint8 [rows, S, S, 3] arrays; "mask" shows the mask over the source."""
    labels = list(columns)
    sources = columns["source"]
    rows = []
    for i in range(len(sources)):
        row = [
            visualize.overlay_mask(sources[i], masks[i]) if label == "mask" else columns[label][i] for label in labels
        ]
        rows.append([_enlarge(cell) for cell in row])
    return visualize.image_grid(rows, col_labels=[label.replace(" (", "\n(") for label in labels])


def transfer_figure(
    methods: Sequence[Method], pairs: EvalPairs, truth: SwapTruth, region: str, rows: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Source, exemplar, mask, ground truth and each method's edit, for the pairs `rows`."""
    rows = np.asarray(rows)
    sources, exemplars = pairs.sources[rows], pairs.exemplars[rows]
    masks = region_masks(pairs.landmarks[rows], region, pairs.sources.shape[1])
    columns = {"source": sources, "exemplar": exemplars, "mask": sources, "ground truth": truth.render(region, rows)}
    columns.update({method.name: _edits(method, sources, exemplars, masks) for method in methods})
    return _grid(columns, masks)


def filter_figure(
    method: Method, pairs: EvalPairs, truth: SwapTruth, region: str, attribute: str, count: int
) -> np.ndarray:
    """Att-EBGAN with and without `attribute`, on the first `count` pairs whose exemplar has it."""
    holders = np.flatnonzero(pairs.labels([attribute], exemplar=True)[:, 0])[:count]
    if not holders.size:
        raise ValueError(f"No exemplar among the {len(pairs)} test pairs has {attribute}; use more --num_pairs.")
    sources, exemplars = pairs.sources[holders], pairs.exemplars[holders]
    masks = region_masks(pairs.landmarks[holders], region, pairs.sources.shape[1])
    switches = np.ones([len(holders), len(method.attribute_names)], np.float32)
    switches[:, method.attribute_names.index(attribute)] = 0.0
    columns = {
        "source": sources,
        "exemplar": exemplars,
        "mask": sources,
        "ground truth": truth.render(region, holders),
        f"ground truth\nwithout {attribute}": truth.render(region, holders, drop=(attribute,)),
        method.name: _edits(method, sources, exemplars, masks),
        f"{method.name}\nwithout {attribute}": _edits(method, sources, exemplars, masks, switches),
    }
    return _grid(columns, masks)


def composed_figure(
    editor: Editor,
    pairs: EvalPairs,
    rows: Sequence[int] | np.ndarray,
    parts: Sequence[tuple[str, int]] = COMPOSED_PARTS,
    strengths: Sequence[float] = COMPOSED_STRENGTHS,
) -> np.ndarray:
    """Per row a source, the faces its parts come from, the parts' masks and one `edit_composed` call per strength
    (every part at that strength); the masks follow the source's own landmarks."""
    rows = np.asarray(rows)
    size = pairs.sources.shape[1]
    sources = pairs.sources[rows]
    donors = [pairs.sources[(rows + offset) % len(pairs)] for _, offset in parts]
    masks = np.stack([region_masks(pairs.landmarks[rows], region, size) for region, _ in parts], axis=1)
    columns = {"source": sources}
    columns.update({f"{region} from": donor for (region, _), donor in zip(parts, donors)})
    columns["mask"] = sources
    exemplars = np.stack(donors, axis=1)
    for strength in strengths:
        columns[f"strength {strength:g}"] = editor.edit_composed(
            sources, exemplars, masks, np.full([len(rows), len(parts)], strength, np.float32)
        )
    return _grid(columns, masks.max(axis=1))


def paper_figures(
    model_paths: Sequence[str],
    data_dir: str,
    output_dir: str,
    rows: int = 6,
    num_pairs: int = 100,
    filter_attribute: str = "Mustache",
    regions: Sequence[str] | None = None,
) -> list[str]:
    """Writes the paper's figures for the models (training runs or exports) into `output_dir`; returns the paths.

    Transfer figures show the first `rows` test pairs; the filter figure (when an Att-EBGAN model is given) the first
    `rows` pairs among the first `num_pairs` whose exemplar has `filter_attribute`; the composed figure (with the
    last exported model that has `edit_composed`) the first `rows` test faces. Synthetic faces only (the ground
    truth is re-rendered). ValueError for unknown regions or attributes, before anything is written.
    """
    if rows < 1:
        raise ValueError(f"--rows must be at least 1, got {rows}.")
    wanted = parse_regions(regions) if regions is not None else tuple(region for _, region, _ in TRANSFER_FIGURES)
    unknown = [region for region in wanted if region not in {region for _, region, _ in TRANSFER_FIGURES}]
    if unknown:  # checked before any model is loaded
        raise ValueError(
            f"No paper figure for region(s) {', '.join(unknown)}; figures exist for "
            f"{', '.join(region for _, region, _ in TRANSFER_FIGURES)}."
        )
    models, image_size, dataset, _ = open_models(model_paths, "synthetic_faces", wanted)
    names = method_names([model.variant for model in models], model_paths)
    methods = [model.methods(name)[0] for model, name in zip(models, names)]
    filtering = [method for method in methods if method.variant == ATT_EBGAN]
    if filtering and filter_attribute not in filtering[0].attribute_names:
        raise ValueError(
            f"{filtering[0].name} has no attribute {filter_attribute!r}; it filters "
            f"{', '.join(filtering[0].attribute_names)}."
        )
    pairs = load_pairs(dataset, data_dir, image_size, max(num_pairs, rows + 2))
    truth = SwapTruth(pairs, image_size)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for file_name, region, _ in TRANSFER_FIGURES:
        if region in wanted:
            grid = transfer_figure(methods, pairs, truth, region, range(min(rows, len(pairs))))
            written.append(_save(grid, output_dir, file_name))
    if filtering:
        grid = filter_figure(filtering[0], pairs, truth, "mouth", filter_attribute, rows)
        written.append(_save(grid, output_dir, FILTER_FIGURE.format(attribute=filter_attribute.lower())))
    composing = [
        model.editor for model in models if model.editor is not None and EDIT_COMPOSED in model.editor.signatures
    ]
    if composing:
        grid = composed_figure(composing[-1], pairs, range(min(rows, len(pairs))))
        written.append(_save(grid, output_dir, COMPOSED_FIGURE))
    return written


def _save(grid: np.ndarray, output_dir: str, file_name: str) -> str:
    path = os.path.join(output_dir, file_name)
    images.save_image(path, grid)
    return path

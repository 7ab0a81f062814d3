"""Image grids with labels and mask overlays, for previews, TensorBoard and edit reports (uint8 in, uint8 out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ebgan_tf import images
from ebgan_tf.config import ATT_EBGAN

if TYPE_CHECKING:
    from ebgan_tf.models.trainer import EBGANTrainer

BACKGROUND = 255  # grid padding and empty cells: white
TEXT_COLOR = (0, 0, 0)
LABEL_MARGIN = 3  # pixels around a label


def _as_rgb(cell: np.ndarray) -> np.ndarray:
    """uint8 [H, W], [H, W, 1] or [H, W, 3] -> [H, W, 3]."""
    cell = np.asarray(cell)
    if cell.dtype != np.uint8:
        raise ValueError(f"Grid cells must be uint8 images, got {cell.dtype} (see ebgan_tf.images.to_uint8).")
    if cell.ndim == 2:
        cell = cell[..., None]
    if cell.ndim != 3 or cell.shape[-1] not in (1, 3):
        raise ValueError(f"Grid cells must be [H, W], [H, W, 1] or [H, W, 3], got {cell.shape}.")
    return np.repeat(cell, 3, axis=-1) if cell.shape[-1] == 1 else cell


def _text_size(
    draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str
) -> tuple[int, int]:
    """(width, height) of a (possibly multi-line) label, margins included; (0, 0) for an empty label."""
    if not text:
        return 0, 0
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return int(right) + 2 * LABEL_MARGIN, int(bottom) + 2 * LABEL_MARGIN  # whole pixels (typed as floats)


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    pad: int = 2,
) -> np.ndarray:
    """Tiles images into one uint8 [H, W, 3] grid, with optional labels left of rows and above columns.

    Cells are uint8 [H, W], [H, W, 1] or [H, W, 3]; `None` or a short row leaves the cell blank. Every cell gets
    the size of the largest image; smaller images are centred. Labels may have several lines ("\\n") and are drawn
    with PIL's default font.
    """
    if not rows or not any(len(row) for row in rows):
        raise ValueError("image_grid needs at least one image.")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"Got {len(row_labels)} row labels for {len(rows)} rows.")
    num_cols = max(len(row) for row in rows)
    if col_labels is not None and len(col_labels) != num_cols:
        raise ValueError(f"Got {len(col_labels)} column labels for {num_cols} columns.")
    cells = [[None if cell is None else _as_rgb(cell) for cell in row] for row in rows]
    present = [cell for row in cells for cell in row if cell is not None]
    if not present:
        raise ValueError("image_grid needs at least one image.")
    cell_h = max(cell.shape[0] for cell in present)
    cell_w = max(cell.shape[1] for cell in present)

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_sizes = [_text_size(measure, font, text) for text in (row_labels or [])]
    col_sizes = [_text_size(measure, font, text) for text in (col_labels or [])]
    label_w = max((w for w, _ in row_sizes), default=0)
    header_h = max((h for _, h in col_sizes), default=0)
    col_w = max([cell_w] + [w for w, _ in col_sizes])
    row_hs = [max(cell_h, row_sizes[i][1] if row_sizes else 0) for i in range(len(rows))]

    width = label_w + pad + num_cols * (col_w + pad)
    height = header_h + pad + sum(h + pad for h in row_hs)
    grid = np.full((height, width, 3), BACKGROUND, np.uint8)
    y = header_h + pad
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            if cell is None:
                continue
            top = y + (row_hs[i] - cell.shape[0]) // 2
            left = label_w + pad + j * (col_w + pad) + (col_w - cell.shape[1]) // 2
            grid[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
        y += row_hs[i] + pad

    if row_labels is None and col_labels is None:
        return grid
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    y = header_h + pad
    for i, text in enumerate(row_labels or []):
        draw.multiline_text(
            (LABEL_MARGIN, y + (row_hs[i] - row_sizes[i][1]) // 2 + LABEL_MARGIN), text, fill=TEXT_COLOR, font=font
        )
        y += row_hs[i] + pad
    for j, text in enumerate(col_labels or []):
        left = label_w + pad + j * (col_w + pad) + (col_w - col_sizes[j][0]) // 2
        draw.multiline_text((left + LABEL_MARGIN, LABEL_MARGIN), text, fill=TEXT_COLOR, font=font)
    return np.asarray(canvas, np.uint8)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.5,
) -> np.ndarray:
    """Tints the masked pixels of a uint8 image [H, W, 3] with `color` at opacity `alpha` * mask.

    `mask` is [H, W] or [H, W, 1]: bool, or numbers in [0, 1] (soft masks blend proportionally).
    """
    image = _as_rgb(image)
    weight = np.asarray(mask, np.float32)
    if weight.ndim == 3 and weight.shape[-1] == 1:
        weight = weight[..., 0]
    if weight.shape != image.shape[:2]:
        raise ValueError(f"Mask shape {np.shape(mask)} does not match image shape {image.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    weight = alpha * np.clip(weight, 0.0, 1.0)[..., None]
    tinted = image * (1.0 - weight) + np.asarray(color, np.float32) * weight
    return np.round(tinted).astype(np.uint8)


def attribute_labels(attributes: np.ndarray, attribute_names: tuple[str, ...]) -> str:
    """One line per attribute that is on, e.g. 'Mustache\\nSmiling', or '(none)'."""
    return "\n".join(name for name, on in zip(attribute_names, attributes) if on > 0.5) or "(none)"


def edit_grid(trainer: EBGANTrainer, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """uint8 grid, one row per example: source, exemplar, mask (over the source), result and, for Att-EBGAN,
    the result with the first attribute (e.g. Mustache) filtered out. Rows are labelled with the exemplar's labels.
    """
    source, exemplar, mask = (np.asarray(batch[key]) for key in ("source", "exemplar", "mask"))
    columns = [images.to_uint8(source), images.to_uint8(exemplar)]
    columns.append(np.stack([overlay_mask(image, m) for image, m in zip(columns[0], mask)]))
    columns.append(images.to_uint8(np.asarray(trainer.edit(source, exemplar, mask))))
    labels = ["source", "exemplar", "mask", "result"]
    names = tuple(trainer.attribute_names)
    if trainer.variant == ATT_EBGAN:
        without_first = np.ones([len(source), len(names)], np.float32)  # the `attributes` switches
        without_first[:, 0] = 0.0
        columns.append(images.to_uint8(np.asarray(trainer.edit(source, exemplar, mask, without_first))))
        labels = ["source", "exemplar", "mask", "result\n(all on)", f"without\n{names[0]}"]
    rows = [[column[i] for column in columns] for i in range(len(source))]
    row_labels = [attribute_labels(attributes, names) for attributes in np.asarray(batch["exemplar_attributes"])]
    return image_grid(rows, row_labels=row_labels, col_labels=labels)

"""CelebA from a local copy: parsing, splits, crop, malformed inputs and both forms, on synthetic fixtures."""

import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.config import CELEBA_ATTRIBUTES
from ebgan_tf.data import celeba, pipeline
from ebgan_tf.data.celeba_fixture import CELEBA_MEAN_LANDMARKS, make_celeba_fixture

NUM_IMAGES = 20  # 16 train, 2 validation, 2 test


def _rows(path: str, skip: int) -> list[list[str]]:
    """The file's rows split on whitespace, after `skip` lines: an independent reading of the CelebA format."""
    with open(path, encoding="utf-8") as file:
        return [line.split() for line in file.read().splitlines()[skip:] if line.strip()]


def _example_arrays(example: dict) -> tuple[np.ndarray, list[int], list[int]]:
    return (
        example["image"].numpy(),
        [int(example["attributes"][name]) for name in CELEBA_ATTRIBUTES],
        [int(example["landmarks"][name]) for name in celeba.LANDMARK_COLUMNS],
    )


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("celeba"))
    make_celeba_fixture(directory, num_images=NUM_IMAGES, form="extracted", seed=3)
    return directory


@pytest.fixture
def copy_of(extracted, tmp_path):
    """A private copy of the extracted fixture that a test may damage."""
    target = str(tmp_path / "copy")
    shutil.copytree(extracted, target)
    return target


@pytest.mark.slow
def test_examples_match_the_files_line_for_line(extracted):
    attributes = _rows(os.path.join(extracted, celeba.ATTR_FILE), 2)
    landmarks = _rows(os.path.join(extracted, celeba.LANDMARKS_FILE), 2)
    examples = list(celeba.load_examples(extracted, "train+validation+test"))
    assert len(examples) == len(attributes) == len(landmarks) == NUM_IMAGES
    for k, example in enumerate(examples):
        image, values, points = _example_arrays(example)
        assert values == [int(value > "0") for value in attributes[k][1:]]  # "1" -> 1, "-1" -> 0
        assert points == [int(value) for value in landmarks[k][1:]]
        expected = tf.io.decode_jpeg(tf.io.read_file(os.path.join(extracted, "img_align_celeba", attributes[k][0])))
        np.testing.assert_array_equal(image, expected.numpy())
        assert image.shape == (218, 178, 3) and image.dtype == np.uint8
        assert example["landmarks"]["nose_x"].dtype == tf.int64 and example["attributes"]["Smiling"].dtype == tf.bool


def test_fixture_files_have_celeba_formats(extracted):
    with open(os.path.join(extracted, celeba.ATTR_FILE), encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert lines[0] == str(NUM_IMAGES)
    assert lines[1].split() == list(CELEBA_ATTRIBUTES)
    assert lines[2].startswith("000001.jpg ") and len(lines[2]) == len("000001.jpg") + 40 * 3  # " -1" / "  1"
    assert set(lines[2][10:].split()) <= {"1", "-1"}
    partition = _rows(os.path.join(extracted, celeba.PARTITION_FILE), 0)
    assert [row[0] for row in partition] == [f"{k:06d}.jpg" for k in range(1, NUM_IMAGES + 1)]
    assert [int(row[1]) for row in partition] == [0] * 16 + [1] * 2 + [2] * 2
    # The faces are placed where aligned CelebA faces have their landmarks.
    points = np.array([[int(v) for v in row[1:]] for row in _rows(os.path.join(extracted, celeba.LANDMARKS_FILE), 2)])
    assert np.abs(points.reshape(-1, 5, 2).mean(0) - CELEBA_MEAN_LANDMARKS).max() < 4


def test_fixture_is_deterministic_by_seed(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        make_celeba_fixture(str(tmp_path / name), num_images=3, seed=seed)

    def read(name):
        return open(tmp_path / name / celeba.ATTR_FILE).read() + open(tmp_path / name / celeba.LANDMARKS_FILE).read()

    assert read("a") == read("b") != read("c")


@pytest.mark.slow
def test_split_membership_and_expressions(extracted):
    partition = [int(row[1]) for row in _rows(os.path.join(extracted, celeba.PARTITION_FILE), 0)]
    everything = [_example_arrays(e)[2] for e in celeba.load_examples(extracted, "train+validation+test")]
    for split, split_id in celeba.SPLIT_IDS.items():
        got = [_example_arrays(e)[2] for e in celeba.load_examples(extracted, split)]
        assert got == [points for points, part in zip(everything, partition) if part == split_id]
    train_validation = [_example_arrays(e)[2] for e in celeba.load_examples(extracted, "train+validation")]
    assert train_validation == everything[:18]
    assert [_example_arrays(e)[2] for e in celeba.load_examples(extracted, "test[:1]")] == everything[18:19]
    with pytest.raises(ValueError, match=r"Invalid split 'bogus'.*train, validation, test"):
        celeba.load_examples(extracted, "bogus")


def test_attribute_subsets(extracted):
    examples = celeba.load_examples(extracted, "test", attribute_names=["Smiling", "Mustache"])
    assert set(examples.element_spec["attributes"]) == {"Smiling", "Mustache"}
    with pytest.raises(ValueError, match=r"Unknown attribute\(s\) 'Smile'.*valid attributes: 5_o_Clock_Shadow"):
        celeba.load_examples(extracted, "test", attribute_names=["Smiling", "Smile"])


@pytest.mark.slow
def test_crop_and_landmark_transform_through_the_pipeline(extracted):
    assert pipeline.default_crop("celeb_a") == celeba.CROP == (26, 3, 170, 170)
    top, left, height, width = celeba.CROP
    examples = celeba.load_examples(extracted, "test")
    originals = list(examples)
    batch = next(
        iter(
            pipeline.make_dataset(
                examples,
                image_size=128,
                regions=["mouth"],
                attribute_names=["Smiling"],
                batch_size=2,
                crop=pipeline.default_crop("celeb_a"),
                training=False,
                repeat=False,
                deterministic=True,
            )
        )
    )
    assert batch["source"].shape == (2, 128, 128, 3)
    for k, example in enumerate(originals):
        image, _, points = _example_arrays(example)
        points = np.array(points, np.float32).reshape(5, 2)
        assert ((points >= (left, top)) & (points < (left + width, top + height))).all()  # face inside the crop
        expected = (points - (left, top)) * (128 / width, 128 / height)
        np.testing.assert_allclose(batch["source_landmarks"][k].numpy(), expected, atol=1e-4)
        # The pixel under each landmark is the same before and after crop + resize (mean of a 5x5 patch).
        source = (batch["source"][k].numpy() + 1) * 127.5
        for (x, y), (x0, y0) in zip(expected.astype(int), points.astype(int)):
            after = source[y - 2 : y + 3, x - 2 : x + 3].mean((0, 1))
            before = image[y0 - 2 : y0 + 3, x0 - 2 : x0 + 3].astype(np.float32).mean((0, 1))
            assert np.abs(after - before).max() < 40
        mouth = expected[3:].mean(0).astype(int)
        assert batch["mask"][k, mouth[1], mouth[0], 0] == 1.0 and batch["mask"][k, 5, 5, 0] == 0.0


def test_find_celeba_lists_missing_files_and_places(tmp_path):
    (tmp_path / celeba.ATTR_FILE).write_text("0\n")
    with pytest.raises(FileNotFoundError) as error:
        celeba.find_celeba(str(tmp_path))
    message = str(error.value)
    for item, subdir in celeba.EXTRACTED_ITEMS.items():
        if item != celeba.ATTR_FILE:
            assert os.path.join(str(tmp_path), item) in message
            assert os.path.join(str(tmp_path), subdir, item) in message
    assert f"    {celeba.ATTR_FILE}" not in message  # it is there, so not listed as missing
    for name in celeba.OFFICIAL_FILES:
        assert os.path.join(str(tmp_path), "downloads", "manual", name) in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        celeba.find_celeba(str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_official_drive_layout_is_found(copy_of):
    for item, subdir in celeba.EXTRACTED_ITEMS.items():
        os.makedirs(os.path.join(copy_of, subdir), exist_ok=True)
        os.rename(os.path.join(copy_of, item), os.path.join(copy_of, subdir, item))
    location = celeba.find_celeba(copy_of)
    assert location.form == "extracted"
    assert location.paths[celeba.PARTITION_FILE] == os.path.join(copy_of, "Eval", celeba.PARTITION_FILE)
    assert len(list(celeba.load_examples(copy_of, "validation"))) == 2
    assert "form 'extracted'" in celeba.describe(copy_of) and "train 16, validation 2, test 2" in celeba.describe(
        copy_of
    )


def _edit_line(path: str, number: int, edit) -> None:
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "file_name, line, edit, message",
    [
        (
            celeba.ATTR_FILE,
            5,
            lambda s: s.rsplit(" ", 1)[0],
            r"list_attr_celeba.txt line 5: expected 41 columns.*found 40",
        ),
        (celeba.LANDMARKS_FILE, 7, lambda s: s + " 12", r"list_landmarks_align_celeba.txt line 7: expected 11 columns"),
        (celeba.PARTITION_FILE, 3, lambda s: s + " 0", r"list_eval_partition.txt line 3: expected 2 columns"),
        (celeba.ATTR_FILE, 4, lambda s: s[:-2] + " x", r"list_attr_celeba.txt line 4: value 'x' is not an integer"),
        (
            celeba.ATTR_FILE,
            6,
            lambda s: s[:-2] + " 0",
            r"list_attr_celeba.txt line 6: attribute values must be 1 or -1",
        ),
        (celeba.ATTR_FILE, 2, lambda s: s.replace("Smiling", "Smile"), r"list_attr_celeba.txt line 2:.*column 32"),
        (celeba.ATTR_FILE, 1, lambda s: "25", r"list_attr_celeba.txt line 1: says 25 images but the file lists 20"),
        (celeba.LANDMARKS_FILE, 4, lambda s: "000001.jpg" + s[10:], r"line 4: 000001.jpg is listed twice"),
        (celeba.PARTITION_FILE, 9, lambda s: s[:-1] + "3", r"list_eval_partition.txt line 9: partition must be 0"),
        (celeba.PARTITION_FILE, 8, lambda s: "999999.jpg 0", r"list_attr_celeba.txt has no row for 999999.jpg.*line 8"),
    ],
)
@pytest.mark.slow
def test_malformed_annotation_files_name_file_and_line(copy_of, file_name, line, edit, message):
    _edit_line(os.path.join(copy_of, file_name), line, edit)
    with pytest.raises(ValueError, match=message):
        celeba.load_examples(copy_of, "train")


@pytest.mark.slow
def test_windows_line_endings_parse_the_same(copy_of, extracted):
    for name in (celeba.ATTR_FILE, celeba.LANDMARKS_FILE, celeba.PARTITION_FILE):
        path = os.path.join(copy_of, name)
        text = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8", newline="").write(text.replace("\n", "\r\n"))
    got = [_example_arrays(e)[1:] for e in celeba.load_examples(copy_of, "train")]
    assert got == [_example_arrays(e)[1:] for e in celeba.load_examples(extracted, "train")]


@pytest.mark.slow
def test_listed_but_absent_image_is_an_error_naming_file_and_line(copy_of):
    os.remove(os.path.join(copy_of, "img_align_celeba", "000003.jpg"))
    with pytest.raises(
        FileNotFoundError,
        match=r"1 image\(s\) listed in .*list_eval_partition.txt are missing"
        r".*000003.jpg \(line 3\)",
    ):
        celeba.load_examples(copy_of, "train")
    assert len(list(celeba.load_examples(copy_of, "test"))) == 2  # other splits are unaffected
    with pytest.raises(FileNotFoundError, match="000003.jpg"):
        celeba.prepare(copy_of)


@pytest.mark.slow
def test_corrupt_jpegs_are_skipped_with_a_counted_warning(copy_of, extracted, caplog):
    image_dir = os.path.join(copy_of, "img_align_celeba")
    truncated = os.path.join(image_dir, "000002.jpg")
    open(truncated, "wb").write(open(truncated, "rb").read()[:600])
    garbage = os.path.join(image_dir, "000005.jpg")
    open(garbage, "wb").write(b"\xff\xd8\xff" + bytes(range(256)) * 8)
    before = len(celeba.skipped_images())
    with caplog.at_level(logging.WARNING):
        got = [_example_arrays(e)[2] for e in celeba.load_examples(copy_of, "train")]
    expected = [_example_arrays(e)[2] for e in celeba.load_examples(extracted, "train")]
    assert got == expected[:1] + expected[2:4] + expected[5:]
    assert celeba.skipped_images()[before:] == [truncated, garbage]
    warnings = [record.getMessage() for record in caplog.records if "skipped unreadable image" in record.getMessage()]
    assert len(warnings) == 2
    assert (
        "000005.jpg (list_eval_partition.txt line 5)" in warnings[1] and f"{before + 2} skipped so far" in warnings[1]
    )


def test_images_of_another_size_are_an_error(copy_of):
    from PIL import Image

    first = os.path.join(copy_of, "img_align_celeba", "000001.jpg")
    Image.open(first).resize((64, 64)).save(first)
    with pytest.raises(ValueError, match=r"000001.jpg is 64x64 pixels; the aligned CelebA images .* are 178x218"):
        celeba.load_examples(copy_of, "train")


def test_describe_and_prepare_extracted(extracted):
    line = celeba.describe(extracted)
    assert line == celeba.prepare(extracted)
    assert "form 'extracted'" in line and "train 16, validation 2, test 2" in line and "\n" not in line


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test if tensorflow-datasets tries to download anything."""
    from tensorflow_datasets.core.download import download_manager

    def refuse(self, resource):
        raise AssertionError(f"tensorflow-datasets tried to download {resource.url}")

    monkeypatch.setattr(download_manager.DownloadManager, "_download", refuse)


@pytest.mark.slow
def test_tfds_form_rejects_unofficial_files_without_downloading(tmp_path, no_network):
    make_celeba_fixture(str(tmp_path), num_images=4, form="tfds_manual")
    assert celeba.find_celeba(str(tmp_path)).form == "tfds_manual"
    assert "not prepared yet" in celeba.describe(str(tmp_path))
    with pytest.raises(ValueError, match=r"rejected .*downloads.manual.\S+: its SHA-256 differs.*extracted form"):
        celeba.load_examples(str(tmp_path), "train")


@pytest.mark.slow
def test_tfds_form_reads_official_files_offline_like_the_extracted_form(tmp_path, no_network, monkeypatch):
    """With the fixture's checksums registered in place of the official ones (standing in for the real files),
    tfds' own celeb_a builder reads the manual dir offline and yields what the extracted form yields."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    from tensorflow_datasets.core.download import checksums

    manual = make_celeba_fixture(str(tmp_path / "tfds"), num_images=8, form="tfds_manual", seed=5)
    make_celeba_fixture(str(tmp_path / "extracted"), num_images=8, form="extracted", seed=5)
    builder_class = tfds.builder_cls("celeb_a")
    monkeypatch.setattr(
        builder_class,
        "url_infos",
        {
            url: checksums.compute_url_info(os.path.join(manual, info.filename))
            for url, info in builder_class.url_infos.items()
        },
    )

    def by_image(data_dir: str, split: str) -> dict:
        return {
            arrays[0].tobytes(): arrays[1:] for arrays in map(_example_arrays, celeba.load_examples(data_dir, split))
        }

    for split in ("train+validation", "test"):
        from_tfds, from_folder = by_image(str(tmp_path / "tfds"), split), by_image(str(tmp_path / "extracted"), split)
        assert len(from_tfds) == len(from_folder) > 0
        assert from_tfds == from_folder
    assert "(prepared)" in celeba.describe(str(tmp_path / "tfds"))
    assert os.path.isdir(tmp_path / "tfds" / "celeb_a" / "2.1.0")


@pytest.mark.slow
def test_images_stay_with_their_labels_when_order_is_not_deterministic(extracted):
    def pairs(examples: tf.data.Dataset) -> dict:
        return {arrays[0].tobytes(): arrays[1:] for arrays in map(_example_arrays, examples)}

    options = tf.data.Options()
    options.deterministic = False  # what the training pipeline sets
    examples = celeba.load_examples(extracted, "train+validation+test")
    assert pairs(examples.with_options(options)) == pairs(examples)

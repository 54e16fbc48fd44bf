"""Automatic naming (ovseg.labels._auto): the shipped bank, the presence rule on a planted labeler
with a known answer, the bank's text cache, and bank files' edge cases."""
import pytest
import torch

from ovseg.labels import VocabularyError
from ovseg.labels._auto import AutoConfig, NameBank, bank_text, choose_names, label_auto, load_bank

PLANTS = {(220, 40, 40): "cat", (40, 40, 220): "sky", (40, 200, 40): "grass", (230, 230, 230): "wall"}
SMALL = (250, 160, 0)  # a small extra region, planted as "dog"


pytestmark = pytest.mark.usefixtures("cache_home")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from ovseg.testing import make_planted_labeler

    return make_planted_labeler({**PLANTS, SMALL: "dog"}, tmp_path_factory.mktemp("planted"))


def _quadrants(h=40, w=56, small=False):
    """(image (3, h, w), segments (h, w)): four flat quadrants, each its own segment; with
    `small`, a 4x4 square of SMALL inside the last quadrant, a fifth segment (0.7% of the image)."""
    colours = list(PLANTS)
    img = torch.zeros(3, h, w)
    seg = torch.zeros(h, w, dtype=torch.long)
    for i, (ys, xs) in enumerate([(slice(0, h // 2), slice(0, w // 2)), (slice(0, h // 2), slice(w // 2, w)),
                                  (slice(h // 2, h), slice(0, w // 2)), (slice(h // 2, h), slice(w // 2, w))]):
        img[:, ys, xs] = torch.tensor(colours[i])[:, None, None] / 255
        seg[ys, xs] = i
    if small:
        img[:, -6:-2, -6:-2] = torch.tensor(SMALL)[:, None, None] / 255
        seg[-6:-2, -6:-2] = 4
    return img, seg


def test_shipped_bank_is_merged_and_tagged():
    bank = load_bank()
    names = [c[0] for c in bank.classes]
    assert 2000 < len(bank) < 3000  # LVIS + COCO-Stuff + ADE20K-full + Objects365 + OpenImages, merged
    assert len(set(names)) == len(names) and set(bank.kinds) == {"thing", "stuff"}
    by_name = {c[0]: (c, k) for c, k in zip(bank.classes, bank.kinds)}
    assert by_name["sky"][1] == "stuff" and by_name["cat"][1] == "thing"
    assert "aeroplane" in by_name["airplane"][0]  # LVIS synonyms kept
    bank.vocabulary  # a valid Vocabulary: no name in two entries


def test_planted_names_come_back_exactly(planted):
    img, seg = _quadrants()
    labels, chosen = label_auto(planted, img, seg)
    assert sorted(c.name for c in chosen) == sorted(PLANTS.values())  # nothing more, nothing less
    assert [lab.class_name for lab in labels] == list(PLANTS.values())  # each quadrant its own name
    assert all(c.segments == 1 and c.area == pytest.approx(0.25) for c in chosen)
    assert [c.score for c in chosen] == sorted((c.score for c in chosen), reverse=True)


def test_presence_rule_small_segment_needs_the_image(planted):
    img, seg = _quadrants(small=True)
    # 0.7% of the image < min_area 2%, but the whole image ranks "dog" within its top 50
    _, chosen = label_auto(planted, img, seg)
    assert sorted(c.name for c in chosen) == sorted([*PLANTS.values(), "dog"])
    dog = next(c for c in chosen if c.name == "dog")
    assert 4 < dog.image_rank <= 50 and dog.area < 0.02  # below the four quadrant names
    labels, chosen = label_auto(planted, img, seg, config=AutoConfig(image_top=4))
    assert sorted(c.name for c in chosen) == sorted(PLANTS.values())  # "dog" fails the presence test
    assert labels[4].class_name in PLANTS.values()  # its segment takes the best name that passed
    labels, chosen = label_auto(planted, img, seg, config=AutoConfig(image_top=4, min_area=0.005))
    assert "dog" in [c.name for c in chosen]  # large enough to name itself


def test_max_classes_and_background(planted):
    img, seg = _quadrants()
    labels, chosen = label_auto(planted, img, seg, config=AutoConfig(max_classes=2))
    assert len(chosen) == 2 and {c.name for c in chosen} <= set(PLANTS.values())
    assert {lab.class_name for lab in labels} <= {c.name for c in chosen}
    labels, chosen = label_auto(planted, img, seg, background=True)
    assert len(chosen) == 4  # the chosen stuff words (sky, grass, wall) leave the background class
    assert all(lab.class_index < 4 for lab in labels)


def test_one_segment_and_a_bank_of_one_name(planted, tmp_path):
    img, seg = _quadrants()
    img[:] = torch.tensor((220, 40, 40))[:, None, None] / 255
    labels, chosen = label_auto(planted, img, torch.zeros_like(seg))
    assert [c.name for c in chosen] == ["cat"] and [lab.class_name for lab in labels] == ["cat"]
    (tmp_path / "one.txt").write_text("cat\n")
    one = NameBank.from_file(tmp_path / "one.txt")
    img, seg = _quadrants()
    labels, chosen = label_auto(planted, img, seg, one)
    assert [c.name for c in chosen] == ["cat"] and {lab.class_name for lab in labels} == {"cat"}


def test_bank_files_empty_duplicates_blank_lines(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing\n\n   \n")
    with pytest.raises(VocabularyError, match="empty"):
        NameBank.from_file(tmp_path / "empty.txt")
    with pytest.raises(VocabularyError, match="no such file"):
        NameBank.from_file(tmp_path / "missing.txt")
    (tmp_path / "dup.txt").write_text("cat, kitty  # thing\n\n\ndog\nCat\nkitty,dog\nsky,heaven # stuff\n\n")
    bank = NameBank.from_file(tmp_path / "dup.txt")
    assert bank.classes == (("cat", "kitty"), ("dog",), ("sky", "heaven"))
    assert bank.kinds == ("thing", "", "stuff")


def test_bank_text_is_computed_once_then_read_from_disk(planted, monkeypatch):
    from ovseg.labels import _text

    bank = NameBank((("cat",), ("sky",), ("grass",), ("wall",), ("dog",)), ("",) * 5)
    calls = []
    real = type(planted)._encode_text
    monkeypatch.setattr(type(planted), "_encode_text", lambda self, t: calls.append(len(t)) or real(self, t))
    from dataclasses import replace

    monkeypatch.setattr(planted, "config", replace(planted.config, disk_cache=True))
    _text.clear_memory_cache()
    first = bank_text(planted, bank, progress=False)[0]
    assert sum(calls) == 5
    bank_text(planted, bank, progress=False)
    _text.clear_memory_cache()  # a new process: only the disk cache is left
    again = bank_text(planted, bank, progress=False)[0]
    assert sum(calls) == 5 and torch.equal(first, again)


def test_choose_names_rule_directly():
    seg_cos = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.1, 0.7]])
    image_cos = torch.tensor([0.5, 0.1, 0.3])  # ranks 1, 3, 2
    areas = torch.tensor([0.6, 0.39, 0.01])
    names = ["a", "b", "c"]
    got = choose_names(seg_cos, areas, image_cos, AutoConfig(image_top=1), names=names)
    assert [c.name for c in got] == ["a", "b"]  # c: small, and only 2nd for the image
    got = choose_names(seg_cos, areas, image_cos, AutoConfig(image_top=2), names=names)
    assert [c.name for c in got] == ["a", "b", "c"]
    got = choose_names(seg_cos, torch.tensor([0.01, 0.01, 0.005]), image_cos,
                       AutoConfig(image_top=0), names=names)
    assert [c.name for c in got] == ["a", "b"]  # nothing passes: the largest segments' names
    with pytest.raises(ValueError, match="max_classes"):
        AutoConfig(max_classes=0)

"""Naming segments: vocabularies, templates, text-embedding cache, mask pooling, classification.

Every model here is a tiny random open_clip checkpoint written to a temp dir and loaded through
`create_labeler(weights=DIR)`, the path real weights take.
"""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from ovseg.labels import (
    Vocabulary,
    VocabularyError,
    list_vocabularies,
    load_background,
    load_templates,
    load_vocabulary,
)

EXPECTED_SIZES = {
    "voc": 21, "pascal_context_59": 59, "pascal_context_60": 60, "coco_object": 81,
    "coco_stuff_171": 171, "coco_stuff_27": 27, "cityscapes": 19, "ade20k_150": 150,
}


# ---- vocabularies and templates (no model) ----------------------------------------------------
@pytest.mark.parametrize("name,size", sorted(EXPECTED_SIZES.items()))
def test_shipped_vocabularies_have_the_benchmark_class_counts(name, size):
    vocabulary = load_vocabulary(name)
    assert len(vocabulary) == size
    assert vocabulary.name == name


def test_every_shipped_vocabulary_is_tested_and_loads():
    assert set(list_vocabularies()) == set(EXPECTED_SIZES) | {"background"}


def test_vocabulary_ids_follow_the_datasets():
    assert load_vocabulary("voc").names[:2] == ["background", "aeroplane"]
    assert load_vocabulary("voc")[15] == "person"
    assert load_vocabulary("cityscapes")[0] == "road" and load_vocabulary("cityscapes")[18] == "bicycle"
    assert load_vocabulary("ade20k")[0] == "wall" and load_vocabulary("ade20k")[149] == "flag"
    stuff = load_vocabulary("coco-stuff")
    assert stuff[0] == "person" and stuff[79] == "toothbrush" and stuff[80] == "banner" and stuff[170] == "wood"
    assert load_vocabulary("coco_object").names[1:] == stuff.names[:80]
    assert load_vocabulary("context60").names[1:] == load_vocabulary("context59").names


def test_synonyms_and_background():
    voc = load_vocabulary("voc")
    assert voc.classes[15] == ("person", "people", "man", "woman")
    assert voc.classes[0][0] == "background" and len(voc.classes[0]) > 10
    assert load_background()[0] == "background"


def test_templates():
    vild = load_templates()
    assert len(vild) == 14 and vild[0] == "a photo of a {}." and all("{}" in t for t in vild)
    openai = load_templates("openai")
    assert len(openai) == 80 and openai[0].format("dog") == "a bad photo of a dog."
    assert load_templates(["a {} here"]) == ("a {} here",)


def test_from_names_and_unicode():
    vocabulary = Vocabulary.from_names(["Dog", " person , people ", ("sofa", "couch"), "café", "狗"])
    assert vocabulary.names == ["Dog", "person", "sofa", "café", "狗"]
    assert vocabulary.classes[1] == ("person", "people")


def test_from_file_format(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my classes\n\ncat  # a comment\nperson,people\n  big   dog \n", encoding="utf-8")
    vocabulary = Vocabulary.from_file(path)
    assert vocabulary.classes == (("cat",), ("person", "people"), ("big dog",))
    assert load_vocabulary(path).names == ["cat", "person", "big dog"]


@pytest.mark.parametrize("names,message", [
    ([], "no classes"),
    (["dog", "  "], "blank name"),
    (["dog", "cat,,cow"], "blank name"),
    (["dog", "DOG "], r"class 1: duplicate name 'DOG' \(also in class 0\)"),
    (["dog", "cat,Dog"], "duplicate name"),
    (["dog", "dog,puppy,dog"], "duplicate"),
])
def test_bad_names(names, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_names(names)


@pytest.mark.parametrize("content,message", [
    (b"dog\ncat\n\nDog\n", r"mine.txt:4: duplicate name 'Dog' \(first on line 1\)"),
    (b"dog\n\ncat,\n", r"mine.txt:3: blank name"),
    (b"# only a comment\n\n", r"no classes"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary file"),
    (b"dog\ncat\n\xff\xfe bad", r"mine.txt:3: not UTF-8"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "mine.txt"
    path.write_bytes(content)
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.from_file(path)
    assert issubclass(VocabularyError, ValueError)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        Vocabulary.from_file(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="unknown vocabulary 'vocc'.*voc"):
        load_vocabulary("vocc")
    bad = tmp_path / "t.txt"
    bad.write_text("a photo of a {}.\nno placeholder here\n")
    with pytest.raises(ValueError, match=r"t.txt:2: template"):
        load_templates(bad)


# ---- tiny models ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from ovseg.testing import make_tiny_clip_weights

    root = tmp_path_factory.mktemp("clip")
    return {kind: make_tiny_clip_weights(root / kind, kind=kind) for kind in ("convnext", "vit")}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test its own disk cache, and an empty memory cache."""
    from ovseg.labels import _text

    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    _text.clear_memory_cache()


@pytest.fixture(scope="module")
def labelers(weights):
    from ovseg.labels import create_labeler

    return {kind: create_labeler(weights=path) for kind, path in weights.items()}


def _count_text_calls(labeler, monkeypatch):
    calls = []
    original = labeler._encode_text

    def counting(tokens):
        calls.append(tokens.shape[0])
        return original(tokens)

    monkeypatch.setattr(labeler, "_encode_text", counting)
    return calls


def test_offline_without_weights_fails_fast_and_clearly():
    from ovseg import WeightsNotFoundError
    from ovseg.labels import create_labeler

    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match=r"convnext_large_d_320.*1\.4 GB.*--clip-weights DIR.*weights='DIR'"):
        create_labeler()
    assert time.monotonic() - start < 10
    with pytest.raises(WeightsNotFoundError, match="not a directory"):
        create_labeler(weights="/no/such/clip/dir")
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        create_labeler(pretrained="no-such-tag")
    with pytest.raises(TypeError, match="unknown labeler options.*resolution"):
        create_labeler(resolutoin=320)
    with pytest.raises(ValueError, match="score must be"):
        create_labeler(score="logits")


DEFAULT_CLIP_REPO = "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup"


def _clip_hub(tmp_path, monkeypatch, **checkpoints):
    """A stand-in hub serving the default model's repository with the given checkpoint files."""
    import shutil

    from ovseg.testing import FakeHub, make_tiny_clip_weights

    repo = tmp_path / "repo"
    for i, name in enumerate(checkpoints.get("names", ())):
        folder = make_tiny_clip_weights(tmp_path / f"w{i}", kind="vit", checkpoint=name)  # the fast kind
        repo.mkdir(exist_ok=True)
        for f in ("open_clip_config.json", name):
            shutil.copy2(f"{folder}/{f}", repo / f)
    repo.mkdir(exist_ok=True)
    return FakeHub({DEFAULT_CLIP_REPO: repo}, tmp_path / "hub").install(monkeypatch)


@pytest.mark.parametrize("checkpoint", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors",
                                        "open_clip_pytorch_model.safetensors"])
def test_first_run_loads_the_official_repository_layout(checkpoint, tmp_path, monkeypatch):
    from open_clip.factory import load_state_dict

    from ovseg.labels import create_labeler

    hub = _clip_hub(tmp_path, monkeypatch, names=[checkpoint])
    labeler = create_labeler()  # the default model, from its (stand-in) official repository
    assert hub.downloaded(DEFAULT_CLIP_REPO) == ["open_clip_config.json", checkpoint]
    saved = load_state_dict(str(tmp_path / "repo" / checkpoint))  # .bin: torch.load(weights_only=True)
    key = "logit_scale"
    assert float(labeler.clip.state_dict()[key]) == float(saved[key])
    torch.testing.assert_close(labeler.clip.state_dict()["token_embedding.weight"], saved["token_embedding.weight"])


def test_first_run_takes_safetensors_and_skips_the_pickle_beside_it(tmp_path, monkeypatch):
    from ovseg.labels import create_labeler

    hub = _clip_hub(tmp_path, monkeypatch, names=["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
    create_labeler()
    assert hub.downloaded(DEFAULT_CLIP_REPO) == ["open_clip_config.json", "open_clip_model.safetensors"]


def test_repository_without_a_checkpoint_fails_with_our_error(tmp_path, monkeypatch):
    from ovseg import WeightsNotFoundError
    from ovseg.labels import create_labeler

    _clip_hub(tmp_path, monkeypatch)
    with pytest.raises(WeightsNotFoundError, match=r"has no open_clip_model\.safetensors or "
                                                    r"open_clip_pytorch_model\.safetensors or open_clip_pytorch_model\.bin"):
        create_labeler()


def test_offline_message_gives_the_exact_download_command():
    from ovseg import WeightsNotFoundError
    from ovseg.labels import create_labeler

    with pytest.raises(WeightsNotFoundError) as err:
        create_labeler()
    assert (f"`hf download {DEFAULT_CLIP_REPO} --local-dir DIR --include open_clip_config.json "
            "--include open_clip_pytorch_model.bin`") in str(err.value)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pooling", ["binary", "area"])
def test_whole_image_segment_is_the_model_image_embedding(weights, normalize, pooling):
    """ConvNeXt: pooling one all-image mask then head + projection = open_clip's encode_image of
    the same input (raw [0, 1] by default, as DiffCut feeds it; mean/std with normalize=True).
    Exact up to float summation order: the trunk's head average-pools the last stage, LayerNorms
    the pooled vector and projects it, and a whole-image mask pools the same mean (an attention-
    pooling head would not commute with pooling; open_clip's ConvNeXt models have none)."""
    from ovseg.labels import create_labeler

    labeler = create_labeler(weights=weights["convnext"], normalize=normalize, pooling=pooling)
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    ids, emb = labeler.pool_segments(image, torch.zeros(64, 64, dtype=torch.long))
    x = (((image - labeler.mean) / labeler.std) if normalize else image)[None]
    with torch.no_grad():
        expected = F.normalize(labeler.clip.encode_image(x), dim=-1)
        other = F.normalize(labeler.clip.encode_image(((image - labeler.mean) / labeler.std if not normalize
                                                         else image)[None]), dim=-1)
    assert ids.tolist() == [0]
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-4)
    assert (emb - other).abs().max() > 1e-3  # the normalisation matters: the test can tell them apart


def test_clip_input_is_the_image_as_given_or_resized(labelers):
    """Default: the image as given (only rounded to the stride); resolution=: short side resized."""
    from ovseg.labels import create_labeler
    from ovseg.labels._dense import clip_input

    image = torch.rand(3, 64, 96)
    assert clip_input(image, None, 32) is image
    assert clip_input(torch.rand(3, 70, 90), None, 32).shape[-2:] == (64, 96)
    assert clip_input(image, 32, 32).shape[-2:] == (32, 64)
    up = clip_input(image, 128, 32)  # upscaling: plain bilinear, as DiffCut's 2048 px COCO-Object input
    torch.testing.assert_close(up, F.interpolate(image[None], size=(128, 192), mode="bilinear",
                                                 align_corners=False)[0])
    assert labelers["convnext"].dense_features(image).shape[-2:] == (2, 3)


def test_binary_masks_are_nearest_exact_and_empty_ones_fall_back_to_area():
    from ovseg.labels._dense import binary_segment_masks, segment_weights

    g = torch.Generator().manual_seed(0)
    for (H, W), grid in [((64, 64), (2, 2)), ((100, 75), (7, 5)), ((33, 97), (4, 13)), ((1024, 1024), (32, 32))]:
        segments = torch.randint(0, 5, (H // 8 + 1, W // 8 + 1), generator=g).repeat_interleave(8, 0)
        segments = segments.repeat_interleave(8, 1)[:H, :W].contiguous()
        ids, masks = binary_segment_masks(segments, grid)
        for k, i in enumerate(ids.tolist()):
            expected = F.interpolate((segments == i).float()[None, None], size=grid, mode="nearest-exact")[0, 0]
            if expected.sum() > 0:
                torch.testing.assert_close(masks[k], expected)
    # a one-pixel segment no grid cell samples: published pooling would give it a zero vector (the
    # same embedding for every such segment, whatever the image); it falls back to its area weight
    segments = torch.zeros(64, 64, dtype=torch.long)
    segments[0, 0], segments[63, 63] = 1, 2
    ids, masks = binary_segment_masks(segments, (2, 2))
    assert ids.tolist() == [0, 1, 2]
    assert masks[0].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    torch.testing.assert_close(masks[1:], segment_weights(segments, (2, 2))[1][1:])
    assert masks[1, 0, 0] > 0 and masks[2, 1, 1] > 0


def test_tiny_segments_get_content_dependent_embeddings(weights):
    """The defect the fallback avoids: with a zero pooled vector, two tiny segments on different
    content would get identical embeddings; with the fallback they differ."""
    from ovseg.labels import create_labeler

    labeler = create_labeler(weights=weights["convnext"])
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    segments = torch.zeros(64, 64, dtype=torch.long)
    segments[0, 0], segments[63, 63] = 1, 2
    _, emb = labeler.pool_segments(image, segments)
    assert (emb[1] - emb[2]).abs().max() > 1e-4
    from ovseg.labels._dense import project

    channels = labeler.dense_features(image).shape[0]
    zero = F.normalize(project(labeler.clip.visual, torch.zeros(1, channels)), dim=-1)[0]
    assert (emb[1] - zero).abs().max() > 1e-4 and (emb[2] - zero).abs().max() > 1e-4  # not the constant


@pytest.mark.parametrize("kind", ["convnext", "vit"])
def test_pool_segments_shapes_and_masks(labelers, kind):
    labeler = labelers[kind]
    image = torch.rand(3, 48, 80)
    segments = torch.full((48, 80), 3, dtype=torch.long)
    segments[:, :30] = 7
    segments[0, 0] = 1  # one pixel: smaller than a feature cell, still gets an embedding
    segments[40:, 70:] = -1  # ignored
    ids, emb = labeler.pool_segments(image, segments)
    assert ids.tolist() == [1, 3, 7]
    assert emb.shape == (3, 32) and torch.isfinite(emb).all()
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    dense = labeler.dense_features(image)
    stride = labeler.stride
    assert dense.shape[-2:] == (int(48 / stride + 0.5), int(80 / stride + 0.5))  # as given, sides rounded to the stride


def test_segment_weights_are_area_fractions():
    from ovseg.labels._dense import segment_weights

    segments = torch.zeros(8, 8, dtype=torch.long)
    segments[0, 0] = 1
    ids, w = segment_weights(segments, (2, 2))
    assert ids.tolist() == [0, 1]
    assert w[1, 0, 0] == pytest.approx(1 / 16) and w[1].sum() == pytest.approx(1 / 16)
    torch.testing.assert_close(w.sum(0), torch.ones(2, 2))
    many = torch.arange(40).repeat_interleave(10).reshape(20, 20)  # more segments than one chunk
    ids, w = segment_weights(many, (5, 5))
    assert ids.tolist() == list(range(40))
    torch.testing.assert_close(w.sum(0), torch.ones(5, 5))
    torch.testing.assert_close(w.sum((1, 2)), torch.full((40,), 10 / 16))


def test_class_whose_text_embedding_equals_the_segment_embedding_wins(labelers, monkeypatch):
    """Dense map where each segment's cells hold one class's text embedding: that class wins,
    for segments of different shapes (ViT: dense features are already in the joint space)."""
    from ovseg.labels import semantic_map

    labeler = labelers["vit"]  # resolution 32, stride 8: a 32x48 image is a 4x6 grid
    vocabulary = Vocabulary.from_names(["dog", "cat", "person,people,man", "grass", "sky", "car"])
    text, owner = labeler.text_embeddings(vocabulary)
    cells = torch.tensor([[0, 0, 0, 1, 1, 1],
                          [0, 2, 2, 2, 1, 3],
                          [0, 2, 4, 4, 4, 3],
                          [5, 5, 5, 5, 4, 3]])  # an L, a T, a bar, a single cell...
    truth = {0: 3, 1: 0, 2: 2, 3: 5, 4: 1, 5: 4}  # segment id -> class (2 = via synonym "man")
    rows = {k: (owner == c).nonzero()[-1].item() for k, c in truth.items()}
    grid = torch.stack([text[rows[int(k)]] for k in cells.flatten()]).T.reshape(-1, 4, 6)
    monkeypatch.setattr(labeler, "dense_features", lambda image: grid)
    segments = cells.repeat_interleave(8, 0).repeat_interleave(8, 1)
    labels = labeler.label(torch.rand(3, 32, 48), segments, vocabulary, top_k=2)
    assert [x.segment_id for x in labels] == list(range(6))
    assert {x.segment_id: x.class_index for x in labels} == truth
    assert all(x.class_name == vocabulary[truth[x.segment_id]] for x in labels)
    assert all(len(x.alternatives) == 2 and x.alternatives[0] == (x.class_name, x.score) for x in labels)
    assert all(x.score > x.alternatives[1][1] for x in labels)
    classes = semantic_map(segments, labels)
    assert torch.equal(classes, torch.tensor([truth[int(k)] for k in segments.flatten()]).reshape(segments.shape))


def test_classify_injected_embeddings_threshold_and_background(labelers):
    labeler = labelers["convnext"]
    vocabulary = Vocabulary.from_names(["dog", "cat,kitten", "tree"])
    text, owner = labeler.text_embeddings(vocabulary)
    emb = text[[0, 2, 3]]  # dog, kitten (-> cat), tree
    labels = labeler.classify_embeddings(emb, vocabulary, segment_ids=[4, 5, 9])
    assert [(x.segment_id, x.class_index, x.class_name) for x in labels] == [(4, 0, "dog"), (5, 1, "cat"), (9, 2, "tree")]
    scores = torch.tensor([x.score for x in labels])
    assert ((scores > 0) & (scores <= 1)).all()  # softmax probabilities
    unlabeled = labeler.classify_embeddings(emb, vocabulary, threshold=1.01)
    assert all(x.class_index == -1 and x.class_name == "unlabeled" for x in unlabeled)
    assert unlabeled[0].alternatives[0][0] == "dog"  # the alternatives stay available
    with_bg = labeler.classify_embeddings(emb, vocabulary, background=True, top_k=4)
    assert len(with_bg[0].alternatives) == 4 and "background" in [n for n, _ in with_bg[0].alternatives]
    assert [x.class_index for x in with_bg] == [0, 1, 2]  # "tree" stays the user's class
    bg_emb = labeler.text_embeddings(Vocabulary.from_names(["background"]))[0]
    assert labeler.classify_embeddings(bg_emb, vocabulary, background="background,sky")[0].class_index == 3


def test_cosine_scores(weights):
    from ovseg.labels import create_labeler

    labeler = create_labeler(weights=weights["vit"], score="cosine", disk_cache=False)
    vocabulary = Vocabulary.from_names(["dog", "cat"])
    text, _ = labeler.text_embeddings(vocabulary)
    labels = labeler.classify_embeddings(text, vocabulary)
    assert [x.score for x in labels] == pytest.approx([1.0, 1.0], abs=1e-5)


def test_thousand_classes_are_encoded_in_batches(weights, monkeypatch):
    from ovseg.labels import create_labeler

    labeler = create_labeler(weights=weights["vit"], templates=("a photo of a {}.", "a {}."), text_batch_size=64)
    calls = _count_text_calls(labeler, monkeypatch)
    vocabulary = Vocabulary.from_names([f"class {i}" for i in range(1000)])
    text, owner = labeler.text_embeddings(vocabulary)
    assert text.shape == (1000, 32) and owner.tolist() == list(range(1000))
    assert len(calls) == 32 and max(calls) <= 64 and sum(calls) == 2000


@pytest.mark.parametrize("kind", ["convnext", "vit"])
def test_fast_text_encoder_matches_open_clip(labelers, kind):
    from ovseg.labels._text import fast_encode_text

    labeler = labelers[kind]
    assert fast_encode_text(labeler.clip) is not labeler.clip.encode_text  # the fast path is taken
    tokens = labeler.tokenizer(["a photo of a dog.", "There is a large traffic light in the scene.", "ü"])
    with torch.no_grad():
        torch.testing.assert_close(labeler._encode_text(tokens), labeler.clip.encode_text(tokens),
                                   atol=1e-5, rtol=1e-4)


def test_text_embeddings_are_cached_in_memory_and_on_disk(weights, tmp_path, monkeypatch):
    from ovseg.labels import _text, create_labeler

    labeler = create_labeler(weights=weights["convnext"])
    calls = _count_text_calls(labeler, monkeypatch)
    vocabulary = load_vocabulary("voc")
    first, _ = labeler.text_embeddings(vocabulary)
    n = len(calls)
    assert n > 0
    second, _ = labeler.text_embeddings(vocabulary)
    assert len(calls) == n and torch.equal(first, second)  # memory hit
    assert len(list((tmp_path / "cache" / "text-embeds").glob("*.pt"))) == 1
    _text.clear_memory_cache()
    third, _ = labeler.text_embeddings(vocabulary)
    assert len(calls) == n and torch.equal(first, third)  # disk hit
    labeler.text_embeddings(Vocabulary.from_names(["dog"]))
    assert len(calls) == n + 1  # another vocabulary is another entry


def test_bad_image_and_segments(labelers):
    labeler = labelers["vit"]
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        labeler.label(torch.rand(32, 32, 3), torch.zeros(32, 32, dtype=torch.long), ["dog"])
    with pytest.raises(TypeError, match="uint8"):
        labeler.label(torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(32, 32, dtype=torch.long), ["dog"])
    with pytest.raises(ValueError, match="aspect ratio"):
        labeler.label(torch.rand(3, 32, 32), torch.zeros(32, 64, dtype=torch.long), ["dog"])
    with pytest.raises(ValueError, match="no classes"):
        labeler.label(torch.rand(3, 32, 32), torch.zeros(32, 32, dtype=torch.long), [])


@pytest.mark.parametrize("kind", ["convnext", "vit"])
def test_label_batch_equals_label_per_image(labelers, kind):
    """The batched dense pass (same-size images stacked, others apart) gives `label`'s results:
    the same classes, scores equal to float rounding (batched CPU kernels may sum in another
    order); with batch_size=1 exactly the same."""
    labeler = labelers[kind]
    gen = torch.Generator().manual_seed(3)
    sizes = [(64, 64), (48, 80), (64, 64), (64, 64), (40, 40)]
    images = [torch.rand(3, h, w, generator=gen) for h, w in sizes]
    segments = [torch.randint(0, 4, (h // 8, w // 8), generator=gen).repeat_interleave(8, 0).repeat_interleave(8, 1)
                for h, w in sizes]
    vocab = ["dog", "cat;kitty", "grass"]
    batched = labeler.label_batch(images, segments, vocab, top_k=2, batch_size=2)
    single = labeler.label_batch(images, segments, vocab, top_k=2, batch_size=1)
    for image, segs, got, one in zip(images, segments, batched, single):
        alone = labeler.label(image, segs, vocab, top_k=2)
        assert one == alone
        assert [(x.segment_id, x.class_index, [n for n, _ in x.alternatives]) for x in got] == \
            [(x.segment_id, x.class_index, [n for n, _ in x.alternatives]) for x in alone]
        assert got[0].score == pytest.approx(alone[0].score, rel=1e-5)
    with pytest.raises(ValueError, match="2 images but 1 segment maps"):
        labeler.label_batch(images[:2], segments[:1], ["dog"])


def test_dense_features_fail_loudly_on_nan(labelers, monkeypatch):
    from ovseg.labels import _dense

    labeler = labelers["convnext"]
    monkeypatch.setattr(_dense, "dense_features", lambda visual, x: torch.full((len(x), 4, 2, 2), float("nan")))
    with pytest.raises(FloatingPointError, match="NaN or inf.*float32 or bfloat16"):
        labeler.label(torch.rand(3, 64, 64), torch.zeros(64, 64, dtype=torch.long), ["dog"])

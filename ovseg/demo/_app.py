"""The gradio page and its named API endpoints (gradio is imported only here).

Page: an image (upload or examples/), classes (typed, or a shipped vocabulary) or segments only,
Run; then the overlay with its legend, a table of segments, downloads (label PNG, JSON,
overlay), and a tau slider that recuts the kept tree (`DemoSession`: no backbone pass).

API (stable, for `gradio_client`):
    /label    (image file, classes: str, tau: float) -> (overlay image, JSON dict)
    /segment  (image file, tau: float)               -> (overlay image, JSON dict)
The JSON is `SegmentationResult.to_json()`, as `ovseg label` writes it.
"""
from __future__ import annotations

import html
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ovseg.io import viz
from ovseg.settings.defaults import SLIDER_TAU_MAX
from ovseg.demo._session import DemoSession

if getattr(gr, "__file__", None) is None:  # a stray gradio/ folder (namespace package), not gradio
    raise ImportError(f"the folder {', '.join(map(str, gr.__path__))} is not gradio", name="gradio")

log = logging.getLogger("ovseg.demo")

TYPED = "(typed classes)"
AUTO = "(automatic names)"  # no class list: names chosen per image from the name bank
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # in a source checkout
TABLE_HEADERS = ["segment", "class", "score", "area (px)", "area (%)"]


def _message(err: BaseException, image=None) -> str:
    """A one-paragraph, HTML-safe message for the page (never a traceback); the server's upload
    folder is cut from file names."""
    from ovseg.settings.weights import WeightsNotFoundError
    from ovseg.io import ImageReadError
    from ovseg.labels import VocabularyError
    from ovseg.pipeline import ModelLoadError

    if isinstance(err, _EXPECTED + (ImageReadError, VocabularyError, WeightsNotFoundError, ModelLoadError)):
        text = str(err)
    else:  # unexpected: say what it was; the server log has the traceback
        text = f"{type(err).__name__}: {err}"
    if isinstance(image, (str, Path)):
        text = text.replace(str(Path(image).parent) + "/", "")
    return html.escape(text, quote=False)


def _fail(err: BaseException, image) -> gr.Error:
    """The page's error for `err`; unexpected ones are logged with their traceback."""
    from ovseg.settings.weights import WeightsNotFoundError
    from ovseg.io import ImageReadError
    from ovseg.pipeline import ModelLoadError

    expected = isinstance(err, _EXPECTED + (ImageReadError, WeightsNotFoundError, ModelLoadError))
    log.log(logging.INFO if expected else logging.WARNING, "demo request failed: %s", err,
            exc_info=not expected)
    return gr.Error(_message(err, image), print_exception=False)


_EXPECTED = (ValueError, KeyError, FileNotFoundError)


class DemoApp:
    """The page's callbacks around one `DemoSession` (one set of models per process)."""

    def __init__(self, session: DemoSession):
        self.session = session
        self.out_dir = Path(tempfile.mkdtemp(prefix="ovseg-demo-"))  # downloads, under the temp dir

    # -- inputs --------------------------------------------------------------------------------
    def vocabulary(self, classes: str | None, vocab: str | None = TYPED):
        from ovseg.labels import load_vocabulary
        from ovseg.pipeline import Segmenter

        if vocab == AUTO:  # names chosen per image from the bank (docs/auto-vocabulary.md)
            return self.session.segmenter.auto_vocabulary()
        if vocab and vocab != TYPED:
            return load_vocabulary(vocab)
        if not classes or not classes.strip(" ,;"):
            raise ValueError("No classes: type names separated by commas (e.g. cat, floor, wall), "
                             f"pick a shipped vocabulary or '{AUTO}', or tick 'Segments only'.")
        return Segmenter.vocabulary(classes.split(","))  # duplicates and blanks are refused here

    # -- one result ----------------------------------------------------------------------------
    def compute(self, image, vocabulary, tau: float, *, cached_only: bool = False):
        """-> (result, status text) or None when `cached_only` and the image was never run."""
        if image is None:
            raise ValueError("No image: upload one or pick an example.")
        t0 = time.perf_counter()
        state = self.session.cached(image) if cached_only else self.session.prepare(image)
        if state is None:
            return None
        fresh = state.created >= t0
        t1 = time.perf_counter()
        result = self.session.result(state, tau, vocabulary)
        t2 = time.perf_counter()
        k = len(result.segments)
        status = f"**{k} segment{'s' if k != 1 else ''}** at tau = {tau:.2f}"
        if fresh:
            s = state.seconds
            status += (f" · first pass {t1 - t0:.1f} s (model loading {s['load']:.1f} s, backbone "
                       f"{s['backbone']:.1f} s, NCut tree {s['ncut_tree']:.2f} s)")
        status += (f" · {'cut' if fresh else 'recut'}{' + naming' if vocabulary is not None else ''}"
                   f" {t2 - t1:.2f} s{'' if fresh else ' (no backbone pass)'}"
                   f" · {state.tree.num_cuts()} distinct cuts up to tau {self.session.max_tau:g}")
        return result, status

    def files(self, result, stem: str, tau: float) -> list[str]:
        kind = "segments" if result.classes is None else "labels"
        base = self.out_dir / f"{stem}.tau{tau:.2f}.{kind}"
        png = result.save_png(base.with_suffix(".png"))
        js = result.save_json(base.with_suffix(".json"), label_png=png.name)
        return [str(png), str(js)]

    @staticmethod
    def table(result) -> list[list]:
        total = max(1, result.segment_map.size)
        return [[s.id, s.class_name if result.classes is not None else f"segment {s.id}",
                 None if s.score is None else round(s.score, 3), s.area, round(100 * s.area / total, 1)]
                for s in result.segments]

    @staticmethod
    def overlay(result):
        """The overlay `ovseg label` writes, plus every segment's outline: segments that share a
        class share a colour, and the outlines still show the cut the slider chose."""
        picture = viz.overlay(result.image, result.label_map, result.legend())
        seg = result.segment_map
        edge = np.zeros(seg.shape, dtype=bool)
        edge[:, :-1] |= seg[:, 1:] != seg[:, :-1]
        edge[:-1, :] |= seg[1:, :] != seg[:-1, :]
        pixels = np.array(picture)
        pixels[: seg.shape[0], : seg.shape[1]][edge] = 255
        return Image.fromarray(pixels)

    # -- callbacks -----------------------------------------------------------------------------
    def page(self, image, classes, vocab, tau, segments_only, cached_only=False):
        """Run button and slider: -> overlay, table, downloads, status."""
        try:
            vocabulary = None if segments_only else self.vocabulary(classes, vocab)
            if cached_only and image is None:
                return gr.skip(), gr.skip(), gr.skip(), "Upload an image and press **Run**."
            out = self.compute(image, vocabulary, tau, cached_only=cached_only)
            if out is None:
                return gr.skip(), gr.skip(), gr.skip(), "Press **Run** to segment this image."
            result, status = out
            stem = Path(str(image)).stem if isinstance(image, (str, Path)) else "image"
            return self.overlay(result), self.table(result), self.files(result, stem, tau), status
        except Exception as err:  # noqa: BLE001 - every error becomes a message on the page
            raise _fail(err, image) from None

    def recut(self, image, classes, vocab, tau, segments_only):
        return self.page(image, classes, vocab, tau, segments_only, cached_only=True)

    def api(self, image, classes, tau):
        """/label and /segment (classes None): -> overlay, JSON dict."""
        try:
            from ovseg.pipeline import Segmenter

            vocabulary = None
            if classes is not None:
                if not str(classes).strip(" ,;"):
                    raise ValueError("classes is empty: give comma-separated names or a shipped "
                                     "vocabulary name such as voc")
                vocabulary = Segmenter.vocabulary(classes)  # as Segmenter.label reads it
            tau = self.session.start_tau if tau is None else float(tau)
            result, _ = self.compute(image, vocabulary, tau)
            return self.overlay(result), result.to_json()
        except Exception as err:  # noqa: BLE001
            raise _fail(err, image) from None

    def api_segment(self, image, tau):
        """/segment: -> overlay, JSON dict."""
        return self.api(image, None, tau)


def build_app(segmenter, *, max_tau: float = SLIDER_TAU_MAX) -> gr.Blocks:
    """The demo page for `segmenter` (an `ovseg.Segmenter`; models load on the first Run).

    Returns a `gradio.Blocks`; serve it with `launch_app` (or `.launch()`).
    """
    from ovseg.labels import list_vocabularies

    demo = DemoApp(DemoSession(segmenter, max_tau=max_tau))
    cfg = segmenter.config
    with gr.Blocks(title="ovseg demo") as app:
        gr.Markdown("## ovseg: open-vocabulary segmentation (DiffCut + CLIP)\n"
                    "Upload an image, name classes, press **Run**; then move **tau**: the "
                    "normalized-cut tree is kept, so each move is a recut, not a new pass.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Image", elem_id="ovseg-image", height=320)
                classes = gr.Textbox(label="Classes", placeholder="cat, floor, wall",
                                     info='Comma-separated; "person;people" gives synonyms.',
                                     elem_id="ovseg-classes")
                vocab = gr.Dropdown([TYPED, AUTO, *list_vocabularies()], value=TYPED,
                                    label="or a shipped vocabulary", elem_id="ovseg-vocab")
                segments_only = gr.Checkbox(False, label="Segments only (no names)",
                                            elem_id="ovseg-segments-only")
                # The method (a name of ovseg.masks.list_methods()) is chosen per process: `ovseg demo --method`.
                run = gr.Button("Run", variant="primary", elem_id="ovseg-run")
                slider_label, moves = demo.session.slider()  # what the method's slider moves
                tau = gr.Slider(0.0, demo.session.max_tau, value=demo.session.start_tau, step=0.01,
                                label=f"{slider_label} · method {cfg.method}", interactive=moves,
                                elem_id="ovseg-tau")
            with gr.Column(scale=2):
                overlay = gr.Image(label="Overlay", type="pil", format="png", interactive=False,
                                   elem_id="ovseg-overlay")
                status = gr.Markdown("Upload an image and press **Run**.", elem_id="ovseg-status")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Segments", interactive=False,
                                     elem_id="ovseg-table", wrap=True)
                files = gr.File(label="Downloads (label PNG, JSON)", file_count="multiple",
                                interactive=False, elem_id="ovseg-files")
        examples = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if examples:
            gr.Examples([[str(p), "cat, floor, wall"] if p.stem == "chelsea" else [str(p), ""]
                         for p in examples], inputs=[image, classes])
        page_inputs = [image, classes, vocab, tau, segments_only]
        page_outputs = [overlay, table, files, status]
        run.click(demo.page, page_inputs, page_outputs, api_visibility="private")
        tau.change(demo.recut, page_inputs, page_outputs, api_visibility="private",
                   trigger_mode="always_last", show_progress="minimal")

        with gr.Column(visible=False):  # the named endpoints for scripts
            api_image = gr.File(type="filepath", label="image")
            api_classes = gr.Textbox(label="classes")
            api_tau = gr.Number(demo.session.start_tau, label="tau", minimum=0, maximum=demo.session.max_tau)
            api_overlay = gr.Image(type="pil", format="png", label="overlay")
            api_json = gr.JSON(label="result")
            label_btn, segment_btn = gr.Button("label"), gr.Button("segment")
        label_btn.click(demo.api, [api_image, api_classes, api_tau], [api_overlay, api_json],
                        api_name="label")
        segment_btn.click(demo.api_segment, [api_image, api_tau],
                          [api_overlay, api_json], api_name="segment")
    app.ovseg_session = demo.session  # for tests and scripts: the models and kept trees
    return app


def launch_app(app: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = 7860,
               share: bool = False, block: bool = True, quiet: bool = False):
    """Serve `app` (from `build_app`); block=False returns at once (tests: `app.close()`)."""
    allowed = [str(EXAMPLES_DIR)] if EXAMPLES_DIR.is_dir() else []
    return app.launch(server_name=host, server_port=port, share=share, show_error=True,
                      allowed_paths=allowed, prevent_thread_lock=not block, quiet=quiet)

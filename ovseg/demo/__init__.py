"""A web page for ovseg: `ovseg demo` (needs the optional extra: pip install "ovseg[demo]").

    from ovseg import Segmenter
    from ovseg.demo import build_app, launch_app
    launch_app(build_app(Segmenter(device="cuda")), port=7860)

The page keeps each image's normalized-cut tree (`DemoSession`), so its tau slider recuts
without a backbone pass. Named endpoints /label and /segment serve `gradio_client` scripts.
gradio is imported only by `build_app`/`launch_app`; `DemoSession` needs no gradio.
"""
__all__ = ["DemoSession", "ImageState", "build_app", "launch_app"]


def __getattr__(name: str):
    if name in ("build_app", "launch_app"):
        try:
            from ovseg.demo import _app
        except ImportError as err:
            if err.name and err.name.split(".")[0] in ("gradio", "gradio_client"):
                shadow = f" ({err})" if "is not gradio" in str(err) else ""  # a stray gradio/ folder
                raise ImportError(f'the demo needs gradio: pip install "ovseg[demo]"{shadow}') from err
            raise
        return getattr(_app, name)
    if name in ("DemoSession", "ImageState"):
        from ovseg.demo import _session

        return getattr(_session, name)
    raise AttributeError(f"module 'ovseg.demo' has no attribute {name!r}")

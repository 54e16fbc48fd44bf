"""The command line: the edge every command shares (`edge.py`: exit codes, the checks before any
model loads, Ctrl-C), the click option types (`options.py`), and one module per command group
(`pipeline.py`: label, segment; `cache.py`: cache, backbones; `eval.py`, `coherence.py`,
`demo.py`; `ray.py`, the --engine ray side of label/segment). `ovseg/cli.py` gathers them.

Command bodies only parse and call the Python API. Importing a command module loads click and
small torch-free modules only, so `ovseg --help` answers at once.
"""

"""The operations guide's import paths, kept working for scripts written against them.

The guide (docs/python-scripts.md lists its snippets) imports from
`simpletuner.simpletuner_sdk.server...`, the layout of the FastAPI server it was written for.
Here those modules are thin re-exports of the real objects in `cloudops`; nothing is
reimplemented. A module whose objects need Django sets it up on import when the script has
not (`DJANGO_SETTINGS_MODULE` defaults to `cloudops.settings`), so a plain `python script.py`
works. New code should import from `cloudops` directly.
"""

"""The harness beside the tools: what runs ``tools/*.py`` or other
processes, finds the repository, parses logs, prints reports, generates the
demo's and studies' data when missing, and sets up or ends a process.

It imports the library (:mod:`mmseg_infopro`); the library never imports
it. ``tools/*.py`` import it as ``harness`` (their folder is on
``sys.path`` when run as scripts; tests add it)."""

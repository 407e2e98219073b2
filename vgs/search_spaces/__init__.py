"""The search spaces: the named sweeps' YAML files (package data, beside this file) and the code that
reads them: `spec` loads and parses a YAML into a typed SweepSpec (`model`) after `checks` has
refused what cannot run.  Below the Ray side (vgs.sweep) and the results (vgs.results), which
both read a sweep's spec; it imports neither."""

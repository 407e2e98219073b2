"""Tools around the library, not part of training's import path: benchmarks (bench,
bench_features), the difficulty calibration (calibrate) and image-feature extraction
(extract_image_features).  Each is `python -m vgs.tools.NAME` or a `vgs` subcommand."""

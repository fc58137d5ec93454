"""Line descriptions shipped with linetwin: one TOML file per line (``core.linedesc`` reads them)."""

"""Physics-informed and ML models of the line, and drift detectors. They learn from data only."""

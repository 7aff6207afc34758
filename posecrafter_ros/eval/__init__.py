"""Evaluation on top of the core: metrics, datasets, rosbag replay, reports."""

"""Evaluation on top of the core (no ROS needed except for the live replay).

datasets / loaders  posed image sets in their native layouts, pair sampling by rotation bins
metrics             rotation / translation errors, recalls, AUC
baseline            the plain OpenCV five-point row
rows, runner        estimators side by side on the same pairs, per-bin summaries
report              summary.json, CSV, Markdown and the error-CDF plot
bag, replay         ROS 2 bags (rosbags) and live-node replay (rclpy)
"""

"""The realtime pipeline room: capture, preprocess, inference, smoothing and publish.

Imports `engine` and the joint definitions of `training`, never `tools`.
"""

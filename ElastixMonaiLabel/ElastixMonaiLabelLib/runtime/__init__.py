"""Plumbing every layer shares: atomic file writes, processes and cancellation, background jobs and their event lines, and where resources and caches live.
"""

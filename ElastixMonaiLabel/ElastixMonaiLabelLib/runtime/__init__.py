"""Plumbing every layer shares: atomic file writes, processes and cancellation, progress callbacks (one shape), background jobs and their event lines, and where resources and caches live.
"""

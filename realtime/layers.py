"""Moved to `streams.layers`; the old dotted path stays valid for existing CHANNEL_LAYERS settings."""

from streams.layers import PipelinedPubSubChannelLayer

__all__ = ["PipelinedPubSubChannelLayer"]

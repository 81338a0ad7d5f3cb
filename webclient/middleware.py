"""WhiteNoise for the web client's built assets under /app/assets/.

Vite names every asset by its content hash, so they are cached for a year;
index.html is not an asset (webclient.views serves it, revalidated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class WebClientWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assets = Path(settings.WEB_CLIENT_DIR) / "assets"
        if assets.is_dir():
            self.add_files(str(assets), prefix="app/assets/")

    def immutable_file_test(self, path: str, url: str) -> bool:
        if url.startswith("/app/assets/"):
            return True
        return super().immutable_file_test(path, url)

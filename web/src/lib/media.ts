// Attachments need the bearer token, which <img> and <audio> cannot send: they are fetched
// once and shown from blob: URLs (allowed by the page's CSP), cached for the tab's life.
import { fetchBlob } from "./api";

const cache = new Map<string, Promise<string>>();

export function blobUrl(url: string): Promise<string> {
  let pending = cache.get(url);
  if (!pending) {
    pending = fetchBlob(url).then((blob) => URL.createObjectURL(blob));
    pending.catch(() => cache.delete(url));
    cache.set(url, pending);
  }
  return pending;
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

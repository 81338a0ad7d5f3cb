import { useEffect, useState } from "preact/hooks";
import { api, ApiError, fetchBlob } from "../lib/api";
import { bytes, shortDate } from "../lib/format";
import { saveBlob } from "../lib/media";
import { exportsList, refreshExports } from "../lib/store";
import type { ExportInfo } from "../lib/types";
import { errorText, formatWait, Header, Spinner } from "./common";

export function ExportPage() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const list = exportsList.value;
  const active = list?.find((e) => e.status === "pending" || e.status === "running");

  useEffect(() => {
    void refreshExports();
  }, []);
  useEffect(() => {
    // export.ready arrives as an event; progress is polled while one runs.
    if (!active) return;
    const timer = setInterval(refreshExports, 2000);
    return () => clearInterval(timer);
  }, [active?.id]);

  async function start() {
    setBusy(true);
    setError(null);
    try {
      await api.post("/me/exports", undefined, { maxWait: 0 });
      await refreshExports();
    } catch (e) {
      if (e instanceof ApiError && e.status === 429 && e.retryAfter) setError(`You can request a new export in ${formatWait(e.retryAfter)}.`);
      else setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function download(item: ExportInfo) {
    if (!item.download_url) return;
    setBusy(true);
    try {
      // The link needs the device token, so the archive is fetched here and saved from memory.
      saveBlob(await fetchBlob(item.download_url), `messages-export-${item.created_at.slice(0, 10)}.zip`);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="pane" data-testid="export">
      <Header title="Export my data" back="/settings" />
      <div class="pane-body">
        <p class="muted small">
          A ZIP archive of your profile, contacts, every conversation you can see and your own photos and voice notes, with a
          page that shows them in any browser, offline. Links work for 7 days.
        </p>
        <button class="primary" onClick={start} disabled={busy || !!active} data-testid="request-export">
          {active ? "Export in progress…" : "Request an export"}
        </button>
        {error && <p class="error" data-testid="export-error">{error}</p>}
        {!list && <Spinner />}
        <ul class="export-list">
          {list?.map((item) => (
            <li key={item.id} class="card" data-testid="export-item" data-status={item.status}>
              <div>
                <strong>{shortDate(item.created_at)}</strong> · <span data-testid="export-status">{item.status}</span>
                {(item.status === "pending" || item.status === "running") && (
                  <progress max={100} value={item.progress ?? 0} data-testid="export-progress" />
                )}
                {item.size ? <span class="muted"> · {bytes(item.size)}</span> : null}
                {item.expires_at && item.status === "ready" && <span class="muted"> · until {shortDate(item.expires_at)}</span>}
                {item.error && <span class="error"> · {item.error}</span>}
              </div>
              {item.status === "ready" && (
                <button class="primary small" onClick={() => download(item)} disabled={busy} data-testid="download-export">
                  Download
                </button>
              )}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

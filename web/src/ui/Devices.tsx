import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { shortDate } from "../lib/format";
import type { Device } from "../lib/types";
import { errorText, Header, Spinner } from "./common";


export function Devices() {
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => api.get<Device[]>("/devices").then(setDevices).catch((e) => setError(errorText(e)));
  useEffect(() => {
    void load();
  }, []);
  async function revoke(device: Device) {
    if (!confirm(`Sign out "${device.name}"?`)) return;
    try {
      await api.del(`/devices/${device.id}`);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  }
  return (
    <div class="pane" data-testid="devices">
      <Header title="Devices" back="/settings" />
      <div class="pane-body">
        <p class="muted small">Every phone, computer and browser signed in to your account. Signing one out closes it at once.</p>
        {!devices && !error && <Spinner />}
        {error && <p class="error">{error}</p>}
        <ul class="device-list">
          {devices?.map((device) => (
            <li key={device.id} class="contact" data-testid="device" data-current={device.current ? "1" : "0"}>
              <div class="device-icon">{device.platform.slice(0, 1).toUpperCase()}</div>
              <div class="contact-body">
                <div class="contact-name">
                  {device.name || device.platform} {device.current && <span class="tag">this browser</span>}
                </div>
                <div class="muted small">
                  {device.platform} · signed in {shortDate(device.created_at)}
                  {device.last_active_at ? ` · active ${shortDate(device.last_active_at)}` : ""}
                </div>
              </div>
              {!device.current && (
                <button class="link danger" onClick={() => revoke(device)} data-testid="revoke-device">Sign out</button>
              )}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../lib/api";
import { blobUrl } from "../lib/media";
import { navigate } from "../lib/router";
import { users } from "../lib/store";
import { Icon } from "./icons";

export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    const details = Object.entries(error.details ?? {})
      .map(([field, messages]) => `${field}: ${(messages as string[]).join(" ")}`)
      .join("; ");
    if (error.code === "rate_limited" && error.retryAfter) return `${error.message} Try again in ${formatWait(error.retryAfter)}.`;
    return details ? `${error.message} (${details})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

export function formatWait(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

export function Header(props: { title: ComponentChildren; subtitle?: ComponentChildren; back?: string; children?: ComponentChildren }) {
  return (
    <header class="pane-header">
      {props.back !== undefined && (
        <button class="icon back" aria-label="Back" data-testid="back" onClick={() => navigate(props.back!)}>
          <Icon name="back" />
        </button>
      )}
      <div class="pane-title">
        <div class="title" data-testid="pane-title">{props.title}</div>
        {props.subtitle && <div class="subtitle" data-testid="pane-subtitle">{props.subtitle}</div>}
      </div>
      <div class="pane-actions">{props.children}</div>
    </header>
  );
}

export function Avatar(props: { userId?: string | null; name: string; size?: number; group?: boolean }) {
  const user = props.userId ? users.value.get(props.userId) : undefined;
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    setSrc(null);
    if (user?.avatar_url) blobUrl(user.avatar_url).then(setSrc).catch(() => setSrc(null));
  }, [user?.avatar_url]);
  const initial = (props.name || "?").trim().charAt(0).toUpperCase() || "?";
  const hue = [...(props.userId ?? props.name)].reduce((sum, ch) => sum + ch.charCodeAt(0), 0) % 360;
  return (
    <div class={`avatar${props.group ? " group" : ""}`} data-hue={hue % 12}>
      {src ? <img src={src} alt="" /> : props.group ? <Icon name="group" /> : <span>{initial}</span>}
    </div>
  );
}

export function Spinner() {
  return <div class="spinner" aria-label="Loading" />;
}

// Line icons drawn inline (no icon font, no emoji font needed; allowed by the page's CSP).
const PATHS: Record<string, string> = {
  contacts: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 8a7 7 0 0 1 14 0",
  group: "M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zm-6.5 8.5a6.5 6.5 0 0 1 13 0M16 4.2a3.5 3.5 0 0 1 0 6.6M18 13.6a6.5 6.5 0 0 1 3.5 5.9",
  broadcast: "M3 10v4h3l6 4V6L6 10H3zm13-2a5 5 0 0 1 0 8m2.5-11a9 9 0 0 1 0 14",
  settings: "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm7.4-3a7.4 7.4 0 0 0-.1-1.2l2-1.6-2-3.4-2.4 1a7.5 7.5 0 0 0-2-1.2L14.5 3h-4l-.4 2.6a7.5 7.5 0 0 0-2 1.2l-2.4-1-2 3.4 2 1.6a7.4 7.4 0 0 0 0 2.4l-2 1.6 2 3.4 2.4-1a7.5 7.5 0 0 0 2 1.2l.4 2.6h4l.4-2.6a7.5 7.5 0 0 0 2-1.2l2.4 1 2-3.4-2-1.6c.1-.4.1-.8.1-1.2z",
  info: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zm0-10v6m0-9.5v.5",
  camera: "M4 8h3l2-3h6l2 3h3v11H4V8zm8 9a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z",
  mic: "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21",
  send: "M4 12l16-8-6 16-2.5-6.5L4 12zm7.5 1.5L20 4",
  back: "M15 5l-7 7 7 7",
  stop: "M7 7h10v10H7z",
  file: "M6 3h8l4 4v14H6V3zm8 0v4h4",
  phone: "M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z",
  video: "M3 7h12v10H3V7zm12 3.5L21 7v10l-6-3.5",
  hangup: "M3 14.5c5-5 13-5 18 0l-2.5 2.5-3.5-2v-2.5a9 9 0 0 0-6 0V15l-3.5 2L3 14.5z",
  micOff: "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21M4 4l16 16",
  videoOff: "M3 7h12v10H3V7zm12 3.5L21 7v10l-6-3.5M2 3l19 19",
  packet: "M5 3h14v18H5V3zm0 5c4 3 10 3 14 0M12 10.5a2 2 0 1 0 0 4 2 2 0 0 0 0-4z",
  wallet: "M3 7h16a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H3V7zm0 0V6a2 2 0 0 1 2-2h11v3M16 13.5h2",
  moments: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 0v6m0 12v-6M3.5 9.5l5.5 1M20.5 14.5l-5.5-1M6 18.5l4-4M18 5.5l-4 4",
  pin: "M12 21s-6-5.5-6-11a6 6 0 0 1 12 0c0 5.5-6 11-6 11zm0-8.5a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5z",
};

export type IconName = keyof typeof PATHS;

export function Icon(props: { name: IconName; size?: number; label?: string }) {
  const size = props.size ?? 22;
  return (
    <svg
      class={`icon-svg icon-${props.name}`}
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      stroke-width="1.8"
      stroke-linecap="round"
      stroke-linejoin="round"
      aria-hidden={props.label ? undefined : "true"}
      role={props.label ? "img" : undefined}
      aria-label={props.label}
    >
      <path d={PATHS[props.name]} />
    </svg>
  );
}

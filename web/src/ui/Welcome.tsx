import { me } from "../lib/store";

export function Welcome() {
  return (
    <div class="welcome">
      <div class="logo big">M</div>
      <h2>MiTalk Web</h2>
      <p class="muted">Signed in as {me.value?.display_name || "you"}. Pick a chat, or find friends under Contacts.</p>
      <p class="muted small">Messages reach your phone and this browser at once. Nothing but this device's key is kept in the browser.</p>
    </div>
  );
}

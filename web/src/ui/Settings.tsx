import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, request } from "../lib/api";
import { navigate } from "../lib/router";
import { me, rememberUsers, showToast, signOut } from "../lib/store";
import type { Me, Settings as SettingsShape } from "../lib/types";
import { Avatar, errorText, Header } from "./common";

const CHOICES: Record<string, { label: string; options: string[] }> = {
  discoverable: { label: "Who can find me by my number", options: ["everyone", "contacts", "nobody"] },
  last_seen: { label: "Who sees my last seen and online", options: ["everyone", "contacts", "nobody"] },
  group_add: { label: "Who can add me to groups", options: ["everyone", "contacts", "nobody"] },
  moments_window: { label: "Moments others can see", options: ["all", "6m", "1m", "3d"] },
};
const SWITCHES: Record<string, string> = {
  read_receipts: "Send read receipts",
  message_preview_in_push: "Show message text in notifications",
};

export function Settings() {
  const profile = me.value!;
  const [name, setName] = useState(profile.display_name);
  const [about, setAbout] = useState(profile.about);
  const [error, setError] = useState<string | null>(null);
  const [avatarSupported, setAvatarSupported] = useState(true);

  // Another account signed in under this page: show its profile. Not on mount: the initial
  // state holds it already, and an effect run after the first paint would wipe what was typed.
  const shownId = useRef(profile.id);
  useEffect(() => {
    if (shownId.current === profile.id) return;
    shownId.current = profile.id;
    setName(profile.display_name);
    setAbout(profile.about);
  }, [profile.id]);

  function applyProfile(updated: Me) {
    me.value = updated;
    rememberUsers([{ id: updated.id, display_name: updated.display_name, about: updated.about, avatar_url: updated.avatar_url }]);
  }

  async function save(patch: Partial<Me> | { settings: Partial<SettingsShape> }, done = "Saved") {
    setError(null);
    try {
      applyProfile(await api.patch<Me>("/me", patch));
      showToast(done);
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function onAvatar(event: Event) {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      applyProfile(await request<Me>("PUT", "/me/avatar", { form }));
      showToast("Photo updated");
    } catch (e) {
      // Servers without avatars (the contract's PUT /me/avatar not built yet) answer 404/405.
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) setAvatarSupported(false);
      else setError(errorText(e));
    }
  }

  async function removeAvatar() {
    try {
      await api.del("/me/avatar");
      applyProfile(await api.get<Me>("/me"));
    } catch (e) {
      setError(errorText(e));
    }
  }

  return (
    <div class="pane" data-testid="settings">
      <Header title="Profile and settings" back="/" />
      <div class="pane-body">
        <section class="card profile-card">
          <Avatar userId={profile.id} name={profile.display_name} size={72} />
          <div>
            <div class="contact-name">{profile.display_name || "No name yet"}</div>
            <div class="muted small">Signed in with your phone number</div>
            {avatarSupported ? (
              <div class="row-gap">
                <label class="button small">
                  Change photo
                  <input type="file" accept="image/*" hidden onChange={onAvatar} data-testid="avatar-input" />
                </label>
                {profile.avatar_url && <button class="link" onClick={removeAvatar}>Remove</button>}
              </div>
            ) : (
              <div class="muted small">Profile photos are not available on this server yet.</div>
            )}
          </div>
        </section>
        <form class="card" onSubmit={(e) => { e.preventDefault(); void save({ display_name: name.trim(), about }); }} data-testid="profile-form">
          <label>
            Name
            <input value={name} maxLength={64} required data-testid="display-name" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            About
            <input value={about} maxLength={140} data-testid="about" onInput={(e) => setAbout((e.target as HTMLInputElement).value)} />
          </label>
          <button class="primary" type="submit" disabled={!name.trim()} data-testid="save-profile">Save</button>
        </form>
        <section class="card" data-testid="privacy">
          <h3>Privacy</h3>
          {Object.entries(CHOICES)
            .filter(([key]) => key in profile.settings)
            .map(([key, choice]) => (
              <label key={key}>
                {choice.label}
                <select
                  value={String(profile.settings[key])}
                  data-testid={`setting-${key}`}
                  onChange={(e) => save({ settings: { [key]: (e.target as HTMLSelectElement).value } as Partial<SettingsShape> })}
                >
                  {choice.options.map((option) => (
                    <option key={option} value={option}>{option}</option>
                  ))}
                </select>
              </label>
            ))}
          {Object.entries(SWITCHES)
            .filter(([key]) => key in profile.settings)
            .map(([key, label]) => (
              <label key={key} class="switch">
                <input
                  type="checkbox"
                  checked={Boolean(profile.settings[key])}
                  data-testid={`setting-${key}`}
                  onChange={(e) => save({ settings: { [key]: (e.target as HTMLInputElement).checked } as Partial<SettingsShape> })}
                />
                {label}
              </label>
            ))}
        </section>
        {error && <p class="error" data-testid="settings-error">{error}</p>}
        <section class="card links">
          <button onClick={() => navigate("/wallet")} data-testid="nav-wallet">Wallet</button>
          <button onClick={() => navigate("/devices")} data-testid="nav-devices">Devices</button>
          <button onClick={() => navigate("/export")} data-testid="nav-export">Export my data</button>
          <button class="danger" onClick={() => signOut()} data-testid="sign-out">Sign out of this browser</button>
        </section>
      </div>
    </div>
  );
}

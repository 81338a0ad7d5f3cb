import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { parseAddressBook, uploadAddressBook, type UploadResult } from "../lib/addressbook";
import { lastSeen } from "../lib/format";
import { navigate } from "../lib/router";
import { contactsVersion, me, openDirect, presence, rememberUsers } from "../lib/store";
import type { ContactEntry } from "../lib/types";
import { Avatar, errorText, Header, Spinner } from "./common";

export function useContacts(): [ContactEntry[] | null, string | null, () => void] {
  const [contacts, setContacts] = useState<ContactEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    api
      .get<ContactEntry[]>("/contacts")
      .then((list) => {
        rememberUsers(list.map((entry) => entry.user));
        setContacts(list.sort((a, b) => a.user.display_name.localeCompare(b.user.display_name)));
      })
      .catch((e) => setError(errorText(e)));
  }, [version, contactsVersion.value]);
  return [contacts, error, () => setVersion(version + 1)];
}

export function Contacts() {
  const [contacts, error, reload] = useContacts();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<UploadResult | null>(null);
  const [uploadError, setUploadError] = useState<string | null>(null);

  async function onFile(event: Event) {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = "";
    if (!file || !me.value) return;
    setBusy(true);
    setUploadError(null);
    setResult(null);
    try {
      const entries = parseAddressBook(file.name, await file.text());
      if (!entries.length) throw new Error("No phone numbers found in that file. Use a CSV or vCard (.vcf) export of your contacts.");
      setResult(await uploadAddressBook(entries, me.value.phone));
      reload();
    } catch (e) {
      setUploadError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function message(userId: string) {
    try {
      navigate(`/chat/${await openDirect(userId)}`);
    } catch (e) {
      setUploadError(errorText(e));
    }
  }

  return (
    <div class="pane" data-testid="contacts">
      <Header title="Contacts" back="/" />
      <div class="pane-body">
        <section class="card">
          <h3>Find friends from your address book</h3>
          <p class="muted small">
            Choose a CSV or vCard (.vcf) export of your contacts. Numbers are hashed in this browser with the server's
            discovery key and only the hashes are sent; the file itself never leaves this device.
          </p>
          <label class={`button${busy ? " disabled" : ""}`}>
            {busy ? "Matching…" : "Upload address book"}
            <input type="file" accept=".csv,.vcf,.vcard,text/csv,text/vcard,text/x-vcard" hidden disabled={busy} onChange={onFile} data-testid="book-file" />
          </label>
          {result && (
            <p data-testid="book-result">
              Read {result.numbers} numbers: {result.matches.length} {result.matches.length === 1 ? "friend is" : "friends are"} on MiTalk.
            </p>
          )}
          {uploadError && <p class="error" data-testid="book-error">{uploadError}</p>}
        </section>
        {error && <p class="error">{error}</p>}
        {!contacts && !error && <Spinner />}
        {contacts && contacts.length === 0 && <p class="muted">None of your contacts are here yet.</p>}
        <ul class="contact-list">
          {contacts?.map((entry) => {
            const state = presence.value.get(entry.user.id);
            const status = state?.state === "online" ? "online" : lastSeen(state?.last_seen ?? entry.user.last_seen) || entry.user.about;
            return (
              <li key={entry.user.id} class="contact" data-testid="contact" data-name={entry.user.display_name}>
                <Avatar userId={entry.user.id} name={entry.user.display_name} />
                <div class="contact-body">
                  <div class="contact-name">
                    {entry.user.display_name || "Unnamed"} {entry.mutual && <span class="tag">mutual</span>}
                  </div>
                  <div class="muted small">{status}</div>
                </div>
                <button class="primary small" data-testid="contact-message" onClick={() => message(entry.user.id)}>
                  Message
                </button>
              </li>
            );
          })}
        </ul>
      </div>
    </div>
  );
}

// Address-book upload as the contract's "Contacts" section says: numbers are read from a CSV
// or vCard file in the browser, normalised to E.164, hashed with HMAC-SHA256 under the
// server's discovery pepper (WebCrypto), and only the hashes leave the page.
import { parsePhoneNumberFromString, type CountryCode } from "libphonenumber-js/min";
import { api, ApiError } from "./api";
import type { PublicUser } from "./types";

export interface BookEntry {
  name: string;
  raw: string;
}

export interface Discovery {
  algorithm: string;
  pepper_id: string;
  pepper: string;
  normalization: string;
  max_batch: number;
}

const PHONE_LIKE = /^\+?[\d\s().\-/]{6,24}$/;

/** Unfold vCard lines (RFC 6350 3.2) and read every TEL with the card's FN. */
export function parseVCard(text: string): BookEntry[] {
  const lines = text.replace(/\r\n[ \t]/g, "").replace(/\n[ \t]/g, "").split(/\r?\n/);
  const entries: BookEntry[] = [];
  let name = "";
  let numbers: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon).split(";")[0].toUpperCase().replace(/^ITEM\d+\./, "");
    const value = line.slice(colon + 1).trim();
    if (key === "BEGIN") {
      name = "";
      numbers = [];
    } else if (key === "FN") {
      name = value.replace(/\\,/g, ",").replace(/\\;/g, ";");
    } else if (key === "N" && !name) {
      name = value.split(";").filter(Boolean).reverse().join(" ");
    } else if (key === "TEL") {
      numbers.push(value.replace(/^tel:/i, ""));
    } else if (key === "END") {
      for (const raw of numbers) entries.push({ name, raw });
      numbers = [];
    }
  }
  return entries;
}

function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === "," || ch === ";" || ch === "\t") {
      cells.push(cell.trim());
      cell = "";
    } else cell += ch;
  }
  cells.push(cell.trim());
  return cells;
}

/** A CSV export (Google, Outlook, a phone): every cell that looks like a number; the name from
 * the first column whose header mentions a name, else the first non-number cell. */
export function parseCsv(text: string): BookEntry[] {
  const rows = text.split(/\r?\n/).filter((line) => line.trim()).map(splitCsvLine);
  if (!rows.length) return [];
  const header = rows[0].map((cell) => cell.toLowerCase());
  const hasHeader = header.some((cell) => /name|phone|tel|mobile/.test(cell));
  const nameColumn = hasHeader ? header.findIndex((cell) => /name/.test(cell)) : -1;
  const entries: BookEntry[] = [];
  for (const row of hasHeader ? rows.slice(1) : rows) {
    const numbers = row.filter((cell) => PHONE_LIKE.test(cell) && /\d{5,}/.test(cell.replace(/\D/g, "")));
    const name = nameColumn >= 0 ? row[nameColumn] ?? "" : row.find((cell) => cell && !PHONE_LIKE.test(cell)) ?? "";
    for (const cell of numbers) {
      // Some exports put several numbers in one cell.
      for (const raw of cell.split(/\s*:::\s*/)) entries.push({ name, raw });
    }
  }
  return entries;
}

export function parseAddressBook(fileName: string, text: string): BookEntry[] {
  if (/\.vcf$|\.vcard$/i.test(fileName) || /BEGIN:VCARD/i.test(text)) return parseVCard(text);
  return parseCsv(text);
}

export interface Home {
  country?: CountryCode;
  callingCode?: string;
}

/** E.164 or null; national numbers are read as in the country of the user's own number. */
export function toE164(raw: string, home: Home): string | null {
  const cleaned = raw.trim().replace(/^00/, "+");
  const parsed = parsePhoneNumberFromString(cleaned, { defaultCountry: home.country, defaultCallingCode: home.callingCode });
  if (!parsed || !parsed.isPossible()) return null;
  return parsed.number;
}

/** The user's own country, or at least calling code (a number outside any assigned range has no country). */
export function homeOf(e164: string): Home {
  const parsed = parsePhoneNumberFromString(e164);
  return { country: parsed?.country, callingCode: parsed?.countryCallingCode };
}

function base64urlDecode(text: string): Uint8Array<ArrayBuffer> {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** hex(HMAC-SHA256(key=base64url_decode(pepper), msg=E.164 as UTF-8)), exactly as the contract says. */
export async function hashNumbers(pepper: string, numbers: string[]): Promise<string[]> {
  const key = await crypto.subtle.importKey("raw", base64urlDecode(pepper), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const encoder = new TextEncoder();
  return Promise.all(
    numbers.map(async (number) => {
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(number)));
      return Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("");
    }),
  );
}

export interface UploadResult {
  read: number;
  numbers: number;
  matches: Array<{ hash: string; user: PublicUser; name: string }>;
}

/** Replace the stored address book with this one: batches of max_batch (the first `replace`,
 * the rest `add`); a rotated pepper (409 stale_pepper) means hashing again once. */
export async function uploadAddressBook(entries: BookEntry[], ownPhone: string): Promise<UploadResult> {
  const home = homeOf(ownPhone);
  const names = new Map<string, string>();
  for (const entry of entries) {
    const e164 = toE164(entry.raw, home);
    if (e164 && e164 !== ownPhone && !names.has(e164)) names.set(e164, entry.name);
  }
  const numbers = [...names.keys()];
  for (let attempt = 0; ; attempt++) {
    const discovery = await api.get<Discovery>("/contacts/discovery");
    const hashes = await hashNumbers(discovery.pepper, numbers);
    const nameByHash = new Map(hashes.map((hash, i) => [hash, names.get(numbers[i]) ?? ""]));
    const batch = Math.max(1, discovery.max_batch || 5000);
    const matches: UploadResult["matches"] = [];
    try {
      for (let start = 0; start === 0 || start < hashes.length; start += batch) {
        const result = await api.post<{ matches: Array<{ hash: string; user: PublicUser }>; stored: number }>(
          "/contacts/sync",
          { pepper_id: discovery.pepper_id, mode: start === 0 ? "replace" : "add", hashes: hashes.slice(start, start + batch) },
          { maxWait: 120 },
        );
        for (const match of result.matches) matches.push({ ...match, name: nameByHash.get(match.hash) ?? "" });
      }
      return { read: entries.length, numbers: numbers.length, matches };
    } catch (error) {
      if (error instanceof ApiError && error.code === "stale_pepper" && attempt === 0) continue;
      throw error;
    }
  }
}

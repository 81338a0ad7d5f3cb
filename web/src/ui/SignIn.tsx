import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { completeSignIn, signOutReason } from "../lib/store";
import { errorText, formatWait } from "./common";

function guessRegion(): string {
  const tag = navigator.language || "";
  const region = tag.split("-")[1];
  return region && region.length === 2 ? region.toUpperCase() : "";
}

function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return `Web: ${browser}${os ? ` on ${os}` : ""}`;
}

export function SignIn() {
  const [step, setStep] = useState<"phone" | "code">("phone");
  const [phone, setPhone] = useState("");
  const [region, setRegion] = useState(guessRegion());
  const [normalised, setNormalised] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [resendIn, setResendIn] = useState(0);

  useEffect(() => {
    if (resendIn <= 0) return;
    const timer = setTimeout(() => setResendIn(resendIn - 1), 1000);
    return () => clearTimeout(timer);
  }, [resendIn]);

  async function requestCode(event?: Event) {
    event?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, string> = { phone };
      if (!phone.trim().startsWith("+") && region) body.region = region;
      // A 429 here is an SMS limit (hours): say so instead of waiting.
      const result = await api.post("/auth/otp/request", body, { auth: false, maxWait: 0 });
      setNormalised(result.phone);
      setResendIn(result.resend_after ?? 60);
      setStep("code");
    } catch (e) {
      if (e instanceof ApiError && e.status === 429 && e.retryAfter) setError(`Too many codes requested. Try again in ${formatWait(e.retryAfter)}.`);
      else setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function verify(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await api.post(
        "/auth/otp/verify",
        { phone: normalised, code: code.trim(), device: { name: deviceName(), platform: "web" } },
        { auth: false, maxWait: 0 },
      );
      completeSignIn(result.token);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  }

  return (
    <div class="signin">
      <div class="signin-card">
        <div class="brand">
          <div class="logo">M</div>
          <h1>MiTalk Web</h1>
          <p class="muted">Your chats, in the browser. Sign in with your phone number.</p>
        </div>
        {signOutReason.value && step === "phone" && <p class="notice" data-testid="signout-reason">{signOutReason.value}</p>}
        {step === "phone" ? (
          <form onSubmit={requestCode} data-testid="phone-form">
            <label>
              Phone number
              <input
                data-testid="phone"
                type="tel"
                autoComplete="tel"
                placeholder="+44 7700 900123"
                value={phone}
                onInput={(e) => setPhone((e.target as HTMLInputElement).value)}
                required
              />
            </label>
            <label>
              Country (for numbers without +)
              <input
                class="short"
                maxLength={2}
                placeholder="GB"
                value={region}
                onInput={(e) => setRegion((e.target as HTMLInputElement).value.toUpperCase())}
              />
            </label>
            <button class="primary" type="submit" disabled={busy || !phone.trim()} data-testid="request-code">
              Send code
            </button>
          </form>
        ) : (
          <form onSubmit={verify} data-testid="code-form">
            <p>
              We sent a code to <strong>{normalised}</strong>.{" "}
              <button type="button" class="link" onClick={() => { setStep("phone"); setCode(""); setError(null); }}>
                Change
              </button>
            </p>
            <label>
              6-digit code
              <input
                data-testid="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                maxLength={6}
                value={code}
                onInput={(e) => setCode((e.target as HTMLInputElement).value.replace(/\D/g, ""))}
                required
              />
            </label>
            <button class="primary" type="submit" disabled={busy || code.length !== 6} data-testid="verify">
              Sign in
            </button>
            <button type="button" class="link" disabled={busy || resendIn > 0} onClick={() => requestCode()}>
              {resendIn > 0 ? `Resend code in ${resendIn} s` : "Resend code"}
            </button>
          </form>
        )}
        {error && <p class="error" data-testid="signin-error">{error}</p>}
      </div>
    </div>
  );
}

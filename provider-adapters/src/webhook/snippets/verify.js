const crypto = require("node:crypto");

// True when a webhook request carries a valid, fresh Rescue signature.
// headers: Node's req.headers (names lower-cased by Node).
// rawBody: the raw request body as a Buffer, before any JSON parsing.
function verifyRescueWebhook(secret, headers, rawBody, toleranceS = 300, nowS = Date.now() / 1000) {
  const timestamp = String(headers["rescue-webhook-timestamp"] ?? "");
  const signatures = String(headers["rescue-webhook-signature"] ?? "");
  if (!/^[0-9]+$/.test(timestamp)) return false;
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) return false;
  const signed = Buffer.concat([Buffer.from(timestamp + ".", "ascii"), rawBody]);
  const expected = crypto.createHmac("sha256", secret).update(signed).digest();
  return signatures.split(" ").some((item) => {
    const cut = item.indexOf("=");
    const scheme = item.slice(0, cut);
    const value = item.slice(cut + 1);
    if (cut < 0 || scheme !== "v1" || !/^[0-9a-f]{64}$/.test(value)) return false;
    return crypto.timingSafeEqual(Buffer.from(value, "hex"), expected);
  });
}

module.exports = { verifyRescueWebhook };

// The gateway's rate-limit key (deploy/nginx/nginx.conf.template, js_set $gw_client_key).
//
// "u:<username>" when the request carries a valid access token: the HS256 signature checks
// against CHAT4ALL_JWT_SECRET (the API nodes' own secret, passed to nginx with `env`), typ is
// "access" and it has not expired. Anything else (no token, a forged, expired or refresh token,
// no secret configured) is keyed by the client address, "a:<address>", so inventing tokens
// never buys a fresh allowance.
const crypto = require('crypto');

const BEARER = /^Bearer\s+([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\s*$/i;

function sameText(a, b) { // constant time for equal lengths: the signature is a secret-derived value
    if (a.length !== b.length) {
        return false;
    }
    let diff = 0;
    for (let i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

function decodePart(part) {
    return JSON.parse(Buffer.from(part, 'base64url').toString());
}

function verifiedUser(authorization, secret) {
    if (!secret || !authorization) {
        return null;
    }
    const m = BEARER.exec(authorization);
    if (!m) {
        return null;
    }
    const signature = crypto.createHmac('sha256', secret).update(m[1] + '.' + m[2]).digest('base64url');
    if (!sameText(signature, m[3])) {
        return null;
    }
    let header, claims;
    try {
        header = decodePart(m[1]);
        claims = decodePart(m[2]);
    } catch (e) {
        return null;
    }
    if (header.alg !== 'HS256' || claims.typ !== 'access' || typeof claims.sub !== 'string' || !claims.sub) {
        return null;
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) {
        return null;
    }
    return claims.sub;
}

// a browser's WebSocket cannot set headers: it offers "bearer.<token>" as a subprotocol
const SUBPROTOCOL_TOKEN = /(?:^|,)\s*bearer\.([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*(?:,|$)/;

function bearer(r) {
    if (r.headersIn.Authorization) {
        return r.headersIn.Authorization;
    }
    const m = SUBPROTOCOL_TOKEN.exec(r.headersIn['Sec-WebSocket-Protocol'] || '');
    return m ? 'Bearer ' + m[1] : null;
}

function clientKey(r) {
    const user = verifiedUser(bearer(r), process.env.CHAT4ALL_JWT_SECRET || '');
    return user !== null ? 'u:' + user : 'a:' + r.variables.remote_addr;
}

export default { clientKey };

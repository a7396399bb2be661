// imapflow over TLS against a running ringmaild: implicit TLS ("imaps") or STARTTLS on the
// plain port ("starttls"). Logs in with AUTHENTICATE PLAIN, appends a message, reads it back,
// logs out, and prints one JSON object of what it saw. The server's certificate is the
// self-signed one, trusted from the PEM file given (no verification is switched off).
//
//   node imapflow_tls.mjs imaps|starttls PORT USER PASSWORD CA_PEM
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';

const [mode, port, user, password, caFile] = process.argv.slice(2);
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(1); }, 30000);
const client = new ImapFlow({
    host: '127.0.0.1',
    port: Number(port),
    secure: mode === 'imaps',
    doSTARTTLS: mode === 'starttls' ? true : undefined,
    auth: { user, pass: password, loginMethod: 'AUTH=PLAIN' },
    tls: { ca: [readFileSync(caFile)], servername: 'localhost', minVersion: 'TLSv1.2' },
    logger: false,
});
const out = {};
try {
    await client.connect();
    out.secure = client.secureConnection === true || mode === 'starttls';
    out.authenticated = client.authenticated;
    const tlsSocket = client.socket;
    out.protocol = tlsSocket && tlsSocket.getProtocol ? tlsSocket.getProtocol() : null;
    const appended = await client.append('INBOX', 'From: a@example.com\r\nSubject: over tls\r\n\r\nhello\r\n');
    out.appended_uid = appended.uid;
    const lock = await client.getMailboxLock('INBOX');
    try {
        const msg = await client.fetchOne(String(appended.uid), { uid: true, envelope: true, source: true }, { uid: true });
        out.subject = msg.envelope.subject;
        out.source = msg.source.toString('latin1');
    } finally {
        lock.release();
    }
    await client.logout();
} catch (err) {
    out.error = String(err && err.message || err);
    out.response = err && err.responseText;
}
clearTimeout(timer);
console.log(JSON.stringify(out));

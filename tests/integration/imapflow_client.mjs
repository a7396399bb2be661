// imapflow (Node's IMAP client) against a running ringmaild: a scripted session whose results
// test_imapflow.py checks value by value.
//
//   node imapflow_client.mjs PORT USER PASSWORD < messages.json
//
// Stdin: the messages to append, [{text, flags, date}] (date in ISO 8601).
// Stdout: one JSON object, {step name: result}; a step that threw has {error, ...} instead, and
// later steps still run. Stderr: the protocol exchange of both connections ("A" does the work,
// "B" sits in IDLE on the same mailbox), one line per command or response.
// Every wait is bounded; the whole run is bounded by RUN_MS.

import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';

const RUN_MS = 40000;   // the whole script; the Python side waits a little longer
const EVENT_MS = 10000; // one IDLE notification

const [port, user, password] = process.argv.slice(2);
if (!port || !user || password === undefined) {
    console.error('usage: node imapflow_client.mjs PORT USER PASSWORD');
    process.exit(64);
}

const results = {};
const MESSAGES = JSON.parse(readFileSync(0, 'utf8')).map(m => ({ ...m, date: new Date(m.date) }));

// Sets and Maps become sorted arrays, BigInts and Dates strings: JSON that Python compares as is.
function plain(value) {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Date) return value.toISOString();
    if (value instanceof Set) return [...value].map(plain).sort();
    if (value instanceof Map) return [...value.entries()].map(([k, v]) => [plain(k), plain(v)]);
    if (Buffer.isBuffer(value)) return value.toString('latin1');
    if (Array.isArray(value)) return value.map(plain);
    if (value && typeof value === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(value)) {
            if (v !== undefined) out[k] = plain(v);
        }
        return out;
    }
    return value;
}

function finish(code) {
    process.stdout.write(JSON.stringify(results, null, 1) + '\n', () => process.exit(code));
}

setTimeout(() => {
    results.timed_out = `the script ran past ${RUN_MS} ms`;
    finish(2);
}, RUN_MS);

// A step records what fn returned, or the error (with the server's response) and goes on.
async function step(name, fn) {
    try {
        results[name] = plain(await fn());
    } catch (err) {
        results[name] = {
            error: err.message,
            code: err.code,
            serverResponse: err.response || err.responseText || (err.serverResponseCode && String(err.serverResponseCode))
        };
        console.error(`[step ${name}] failed: ${err.stack}`);
    }
    return results[name];
}

// Protocol lines (and warnings) of one connection to stderr; the server lines are also kept so
// the script can wait for one (the IDLE continuation).
function makeLogger(label, serverLines) {
    const write = (level, entry) => {
        if (!entry || typeof entry !== 'object') return;
        if (entry.src === 's' || entry.src === 'c') {
            if (entry.msg === 'write to socket') return;
            if (entry.src === 's') serverLines.push(entry.msg);
            console.error(`${label} ${entry.src === 's' ? 'S:' : 'C:'} ${entry.msg}`);
        } else if (level === 'warn' || level === 'error' || level === 'fatal') {
            console.error(`${label} ${level}: ${entry.msg || ''} ${entry.err ? entry.err.message || entry.err : ''}`);
        }
    };
    const logger = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        logger[level] = entry => write(level, entry);
    }
    return logger;
}

function makeClient(label) {
    const serverLines = [];
    const client = new ImapFlow({
        host: '127.0.0.1',
        port: Number(port),
        secure: false,
        doSTARTTLS: false,
        auth: { user, pass: password },
        qresync: true,
        disableAutoIdle: true, // IDLE only where the script asks for it
        logger: makeLogger(label, serverLines),
        connectionTimeout: EVENT_MS,
        greetingTimeout: EVENT_MS,
        socketTimeout: RUN_MS
    });
    client.on('error', err => console.error(`${label} error event: ${err.message}`));
    return { client, serverLines };
}

async function waitFor(what, cond, ms = EVENT_MS) {
    const deadline = Date.now() + ms;
    while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await new Promise(resolve => setTimeout(resolve, 20));
    }
}

function summarizeList(list) {
    return list
        .map(m => ({ path: m.path, delimiter: m.delimiter, flags: m.flags, specialUse: m.specialUse || null }))
        .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function summarizeMailbox(mb) {
    return {
        path: mb.path,
        exists: mb.exists,
        uidNext: mb.uidNext,
        uidValidity: mb.uidValidity,
        highestModseq: mb.highestModseq,
        noModseq: !!mb.noModseq,
        readOnly: mb.readOnly,
        flags: mb.flags,
        permanentFlags: mb.permanentFlags,
        qresync: !!mb.qresync
    };
}

function summarizeStructure(node) {
    if (!node) return null;
    const out = { type: node.type, part: node.part || null };
    if (node.parameters) out.parameters = node.parameters;
    if (node.encoding) out.encoding = node.encoding;
    if (node.size !== undefined) out.size = node.size;
    if (node.disposition) out.disposition = node.disposition;
    if (node.dispositionParameters) out.dispositionParameters = node.dispositionParameters;
    if (node.childNodes) out.childNodes = node.childNodes.map(summarizeStructure);
    return out;
}

function summarizeAddresses(list) {
    return (list || []).map(a => ({ name: a.name || '', address: a.address || '' }));
}

function summarizeMessage(msg) {
    const out = { seq: msg.seq, uid: msg.uid };
    if (msg.flags) out.flags = msg.flags;
    if (msg.modseq !== undefined) out.modseq = msg.modseq;
    if (msg.size !== undefined) out.size = msg.size;
    if (msg.internalDate) out.internalDate = msg.internalDate;
    if (msg.envelope) {
        const e = msg.envelope;
        out.envelope = {
            date: e.date, subject: e.subject, messageId: e.messageId, inReplyTo: e.inReplyTo || null,
            from: summarizeAddresses(e.from), to: summarizeAddresses(e.to), cc: summarizeAddresses(e.cc)
        };
    }
    if (msg.bodyStructure) out.bodyStructure = summarizeStructure(msg.bodyStructure);
    if (msg.source) out.source = msg.source.toString('utf8');
    return out;
}

async function main() {
    const a = makeClient('A');
    const b = makeClient('B');
    const A = a.client;
    const B = b.client;
    const idleEvents = []; // what B hears while it idles
    B.on('exists', e => idleEvents.push({ event: 'exists', ...plain(e) }));
    B.on('expunge', e => idleEvents.push({ event: 'expunge', ...plain(e) }));
    B.on('flags', e => idleEvents.push({ event: 'flags', ...plain(e) }));
    const reopenEvents = []; // what A hears while it re-opens the mailbox with QRESYNC
    let recordReopen = false;
    A.on('expunge', e => recordReopen && reopenEvents.push({ event: 'expunge', ...plain(e) }));
    A.on('flags', e => recordReopen && reopenEvents.push({ event: 'flags', ...plain(e) }));

    const connected = await step('connect', async () => {
        await A.connect();
        return {
            authenticated: A.authenticated,
            secureConnection: A.secureConnection,
            enabled: A.enabled,
            capabilities: [...A.capabilities.keys()],
            serverInfo: A.serverInfo,
            namespace: A.namespace
        };
    });
    if (connected.error) return;

    await step('list', async () => summarizeList(await A.list()));
    await step('create', async () => [await A.mailboxCreate('Projects'), await A.mailboxCreate(['Projects', '2024'])]);
    await step('list_after_create', async () => summarizeList(await A.list()).filter(m => m.path.startsWith('Projects')));
    // UTF8=ACCEPT is enabled, so the name goes out (and comes back) as UTF-8, not modified UTF-7.
    await step('utf8_mailbox', async () => {
        const name = 'R\u00e9unions \u4f1a\u8b70';
        const created = await A.mailboxCreate(name);
        const appended = await A.append(name, MESSAGES[0].text);
        const listed = summarizeList(await A.list()).filter(m => m.path.startsWith('R'));
        const status = await A.status(name, { messages: true });
        const deleted = await A.mailboxDelete(name);
        return {
            created,
            appended: { destination: appended.destination, uid: appended.uid },
            listed,
            messages: status.messages,
            deleted
        };
    });

    // B selects the new (empty) mailbox and idles on it.
    await step('idle_start', async () => {
        await B.connect();
        const mb = await B.mailboxOpen('Projects');
        const seen = b.serverLines.length;
        B.idle().catch(err => console.error(`B idle ended: ${err.message}`));
        await waitFor('the IDLE continuation', () => b.serverLines.slice(seen).some(l => l.startsWith('+')));
        return { enabled: B.enabled, mailbox: summarizeMailbox(mb), idling: B.idling };
    });

    // Each change waits for B's notification before the next, so the events come in a fixed order.
    const appended = [];
    for (const [i, m] of MESSAGES.entries()) {
        await step(`append_${i + 1}`, async () => {
            const before = idleEvents.length;
            const res = await A.append('Projects', m.text, m.flags, m.date);
            appended.push(res);
            await waitFor(`exists after append ${i + 1}`, () => idleEvents.slice(before).some(e => e.event === 'exists'));
            return res;
        });
    }

    const opened = await step('open', async () => summarizeMailbox(await A.mailboxOpen('Projects')));

    await step('fetch_all', async () => {
        const query = { uid: true, flags: true, envelope: true, bodyStructure: true, size: true, internalDate: true };
        const msgs = await A.fetchAll('1:*', query);
        return msgs.map(summarizeMessage);
    });
    await step('fetch_sources', async () => {
        const out = [];
        for (const { uid } of appended) {
            out.push(summarizeMessage(await A.fetchOne(String(uid), { uid: true, source: true }, { uid: true })));
        }
        return out;
    });
    await step('fetch_headers', async () => {
        const msg = await A.fetchOne('3', { uid: true, headers: ['subject', 'message-id'] }, { uid: true });
        return { uid: msg.uid, headers: msg.headers.toString('utf8') };
    });
    await step('fetch_binary', async () => {
        // BINARY.PEEK[2]: the server undoes the base64 of part 2.
        const msg = await A.fetchOne('2', { uid: true, bodyParts: ['2'] }, { uid: true, binary: true });
        return { uid: msg.uid, bodyParts: [...msg.bodyParts.entries()].map(([k, v]) => [k, v.toString('hex')]) };
    });
    await step('fetch_body_part', async () => {
        const msg = await A.fetchOne('2', { uid: true, bodyParts: ['1', '2'] }, { uid: true });
        return { uid: msg.uid, bodyParts: msg.bodyParts };
    });

    await step('flags_add', async () => {
        const before = idleEvents.length;
        const ok = await A.messageFlagsAdd('1', ['\\Flagged', '$Important'], { uid: true });
        await waitFor('flags event', () => idleEvents.slice(before).some(e => e.event === 'flags'));
        return ok;
    });
    await step('flags_remove', async () => {
        const before = idleEvents.length;
        const ok = await A.messageFlagsRemove('3', ['$Label1'], { uid: true });
        await waitFor('flags event', () => idleEvents.slice(before).some(e => e.event === 'flags'));
        return ok;
    });
    await step('fetch_flags', async () => (await A.fetchAll('1:*', { uid: true, flags: true })).map(summarizeMessage));
    await step('fetch_changed_since', async () => {
        const since = opened.highestModseq;
        const msgs = await A.fetchAll('1:*', { uid: true, flags: true }, { uid: true, changedSince: BigInt(since) });
        return msgs.map(summarizeMessage);
    });

    await step('search', async () => ({
        unseen: await A.search({ seen: false }, { uid: true }),
        flagged: await A.search({ flagged: true }, { uid: true }),
        draft: await A.search({ draft: true }, { uid: true }),
        subject: await A.search({ subject: 'report' }, { uid: true }),
        from: await A.search({ from: 'carol@example.net' }, { uid: true }),
        body: await A.search({ body: 'attachment' }, { uid: true }),
        keyword: await A.search({ keyword: '$Important' }, { uid: true }),
        uidRange: await A.search({ uid: '2:*' }, { uid: true }),
        since: await A.search({ since: new Date('2024-01-02T00:00:00Z') }, { uid: true }),
        seqAll: await A.search({ all: true }),
        or: await A.search({ or: [{ flagged: true }, { seen: true }] }, { uid: true }),
        none: await A.search({ subject: 'no such subject' }, { uid: true })
    }));

    await step('copy', async () => A.messageCopy('1', 'Archive', { uid: true }));
    await step('move', async () => {
        const before = idleEvents.length;
        const res = await A.messageMove('2', 'Trash', { uid: true });
        await waitFor('expunge event after MOVE', () => idleEvents.slice(before).some(e => e.event === 'expunge'));
        return res;
    });
    await step('delete_message', async () => {
        const before = idleEvents.length;
        const ok = await A.messageDelete('3', { uid: true });
        await waitFor('expunge event after delete', () => idleEvents.slice(before).some(e => e.event === 'expunge'));
        return ok;
    });
    await step('fetch_after', async () => (await A.fetchAll('1:*', { uid: true, flags: true })).map(summarizeMessage));

    await step('status', async () => {
        const query = { messages: true, uidNext: true, unseen: true, uidValidity: true, highestModseq: true, size: true };
        const out = {};
        for (const path of ['Projects', 'Archive', 'Trash', 'INBOX']) {
            const s = await A.status(path, query);
            delete s.path;
            out[path] = s;
        }
        return out;
    });
    await step('fetch_copies', async () => {
        const out = {};
        for (const path of ['Archive', 'Trash']) {
            await A.mailboxOpen(path);
            const msgs = await A.fetchAll('1:*', { uid: true, flags: true, envelope: true, source: true });
            out[path] = msgs.map(m => ({
                uid: m.uid,
                flags: plain(m.flags),
                messageId: m.envelope.messageId,
                source: m.source.toString('utf8')
            }));
        }
        return out;
    });

    // QRESYNC: re-open the mailbox from the state right after the appends; the server reports
    // what was expunged since (VANISHED (EARLIER)) and the flags that changed.
    await step('qresync_open', async () => {
        recordReopen = true;
        const since = { changedSince: BigInt(opened.highestModseq), uidValidity: opened.uidValidity };
        const mb = await A.mailboxOpen('Projects', since);
        recordReopen = false;
        return { mailbox: summarizeMailbox(mb), events: reopenEvents };
    });

    await step('idle_events', async () => idleEvents);

    await step('rename_and_delete_mailboxes', async () => {
        await A.mailboxOpen('INBOX');
        const renamed = await A.mailboxRename('Projects/2024', 'Projects/2025');
        const listRenamed = summarizeList(await A.list()).map(m => m.path);
        const deleted = await A.mailboxDelete('Projects/2025');
        return { renamed, listRenamed, deleted, list: summarizeList(await A.list()).map(m => m.path) };
    });

    await step('logout', async () => {
        await B.logout();
        await A.logout();
        return { a: A.usable, b: B.usable };
    });
}

main().then(() => finish(0), err => {
    results.fatal = err.stack;
    finish(1);
});

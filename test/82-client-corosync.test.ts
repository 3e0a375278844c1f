// The qbipc client against a libqb daemon nobody here wrote: corosync 3.1.7
// from Debian (`apt-get install -y corosync`, done by .ci/run), single node on
// loopback in a temporary folder, bound in time and stopped by its pid. Its
// `cmap` IPC service is queried with cmap's wire format (corosync's
// include/corosync/ipc_cmap.h, mar_gen.h: req_lib_cmap_get is the 16-byte
// request header, a mar_name_t {u16 length @16, 256 bytes @24} and a u64
// value_len @280, 288 bytes; res_lib_cmap_get is the 24-byte response header,
// u64 value_len @24, u8 type @32, the value @40; errors are cs_error_t, CS_OK = 1).
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, readResponseHeader, writeRequestHeader, type Client } from '../src/index.js';
import { LineChild } from './helpers/peers.js';

const COROSYNC = '/usr/sbin/corosync';
const MESSAGE_REQ_CMAP_GET = 2;
const CS_OK = 1;
const CS_ERR_NOT_EXIST = 12;
const CMAP_VALUETYPE_STRING = 11;

const CONFIG = `totem {
  version: 2
  cluster_name: qbtest
  transport: knet
  crypto_cipher: none
  crypto_hash: none
}
nodelist {
  node {
    ring0_addr: 127.0.0.1
    name: node1
    nodeid: 1
  }
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: yes
  to_syslog: no
  to_logfile: no
}
`;

/** cmap_get(key): {error, type, value}. */
async function cmapGet(client: Client, key: string): Promise<{ error: number; type: number; value: Uint8Array }> {
  const request = writeRequestHeader(new Uint8Array(288), { id: MESSAGE_REQ_CMAP_GET, size: 288 });
  const v = new DataView(request.buffer);
  const name = new TextEncoder().encode(key);
  v.setUint16(16, name.byteLength, true);
  request.set(name, 24);
  v.setBigUint64(280, 256n, true); // room we have for the value
  const reply = await client.sendRecv(request, 10_000);
  const header = readResponseHeader(reply);
  if (header.id !== MESSAGE_REQ_CMAP_GET || header.size !== reply.byteLength)
    throw new Error(`unexpected reply id ${header.id} size ${header.size}`);
  if (header.error !== CS_OK) return { error: header.error, type: 0, value: new Uint8Array(0) };
  const r = new DataView(reply.buffer, reply.byteOffset);
  const length = Number(r.getBigUint64(24, true));
  return { error: header.error, type: reply[32]!, value: reply.subarray(40, 40 + length) };
}

test('corosync cmap over the qbipc client: totem.cluster_name of a live daemon', async (t) => {
  if (!existsSync(COROSYNC)) return t.fail(`${COROSYNC} is missing: apt-get install -y corosync (.ci/run does)`);
  const dir = mkdtempSync('/tmp/qbipc-corosync-');
  writeFileSync(join(dir, 'corosync.conf'), CONFIG);
  const daemon = new LineChild(COROSYNC, ['-f', '-c', join(dir, 'corosync.conf')], { cwd: dir });
  let client: Client | undefined;
  try {
    await daemon.waitFor(/ready to provide service/, 60_000);
    client = await connect('cmap', 12328, { timeoutMs: 10_000 });
    t.is(client.authGet().pid, daemon.pid, 'the response came from the daemon we started');
    const name = await cmapGet(client, 'totem.cluster_name');
    t.is(name.error, CS_OK);
    t.is(name.type, CMAP_VALUETYPE_STRING);
    t.is(new TextDecoder().decode(name.value), 'qbtest\0');
    const missing = await cmapGet(client, 'qbipc.no.such.key');
    t.is(missing.error, CS_ERR_NOT_EXIST);
    t.true(client.isConnected);
  } finally {
    client?.disconnect();
    await daemon.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
  }
  t.deepEqual(
    readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${daemon.pid}-`) || e.includes(`corosync-${daemon.pid}-`)),
    [],
    'nothing of the daemon left under /dev/shm',
  );
});

// Small assertions over qbclient replies, so a failing command says what it was.
import type { ExecutionContext } from 'ava';
import { parseReply, type QbClient } from './c-programs.js';

/** Runs `line`, asserts an `ok` reply, returns its fields. */
export async function ok(t: ExecutionContext, client: QbClient, line: string, timeoutMs?: number): Promise<Record<string, string>> {
  const raw = await client.cmd(line, timeoutMs);
  const reply = parseReply(raw);
  if (!reply.ok) t.fail(`"${line}" answered "${raw}"`);
  return reply.fields;
}

/** Runs `line`, asserts an `err errno=E` reply with that errno. */
export async function fails(t: ExecutionContext, client: QbClient, line: string, errno: number): Promise<void> {
  const raw = await client.cmd(line);
  const reply = parseReply(raw);
  t.false(reply.ok, `"${line}" should fail with errno ${errno}, answered "${raw}"`);
  t.is(Number(reply.fields['errno']), errno, `"${line}" answered "${raw}"`);
}

// practice-webhook as ClassConnect delivers to it: Standard Webhooks signed by the
// `standardwebhooks` package, during a secret rotation (the app holds the new and the
// old secret), exactly once, and refused when signed with anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { env, functionUrl, serviceRoleKey, sql, sqlValue } from '../lib/world.js';

const URL = functionUrl('practice-webhook');

/** A practice session as the Python back end creates it, and its owner. */
function practiceSession(sentences) {
  const user = randomUUID();
  const session = randomUUID();
  sql(`INSERT INTO auth.users (id) VALUES ('${user}')`);
  sql(
    `INSERT INTO practice_sessions (id, user_id, status, transcript, sentences) ` +
      `VALUES ('${session}', '${user}', 'analyzing', 'the quick brown fox', '${JSON.stringify(sentences)}'::jsonb)`,
  );
  return session;
}

function scoredEvent(session, attempt, index, score, passed) {
  return {
    type: 'practice.attempt.scored',
    timestamp: new Date().toISOString(),
    data: {
      session_id: session,
      attempt_id: attempt,
      sentence_index: index,
      pronunciation_score: score,
      is_passed: passed,
      pronunciation_analysis: { accuracy: score, fluency: 82 },
      feedback_data: { tips: ['Stress the second syllable.'] },
      transcription_results: { text: 'the quick brown fox' },
      word_level_scores: [{ word: 'quick', score: 91.5, start_ms: 120, end_ms: 480 }],
    },
  };
}

/** Posts `event` as ClassConnect would, signed with every secret given. */
async function deliver(event, secrets, id = `msg_${randomUUID()}`) {
  const payload = JSON.stringify(event);
  const at = new Date();
  const signature = secrets.map((secret) => new Webhook(secret).sign(id, at, payload)).join(' ');
  const response = await fetch(URL, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
    },
    body: payload,
  });
  return { id, status: response.status, body: await response.json() };
}

test('deliveries signed with the new and with the old secret are both processed during rotation', async () => {
  const session = practiceSession(['One.', 'Two.']);
  const first = randomUUID();
  const second = randomUUID();

  const withOld = await deliver(scoredEvent(session, first, 0, 70, true), [env.webhookSecretOld]);
  assert.equal(withOld.status, 200, JSON.stringify(withOld.body));
  assert.deepEqual(withOld.body, { status: 'processed' });
  const withNew = await deliver(scoredEvent(session, second, 1, 90, true), [env.webhookSecretNew]);
  assert.equal(withNew.status, 200, JSON.stringify(withNew.body));

  const [[status, score, passed, attempts]] = sql(
    `SELECT status, pronunciation_score, is_passed, attempt_count FROM practice_sessions WHERE id = '${session}'`,
  );
  assert.deepEqual([status, score, passed, attempts], ['completed', '80.00', 't', '2']);
  assert.equal(sqlValue(`SELECT status FROM practice_attempts WHERE id = '${first}'`), 'completed');
  assert.equal(sqlValue(`SELECT status FROM webhook_events WHERE id = '${withOld.id}'`), 'processed');
});

test('a sender that signs with both secrets at once is accepted', async () => {
  const session = practiceSession(['Only one.']);
  const result = await deliver(scoredEvent(session, randomUUID(), 0, 88, true), [env.webhookSecretNew, env.webhookSecretOld]);
  assert.equal(result.status, 200, JSON.stringify(result.body));
});

test('the same delivery twice is processed once and answered duplicate', async () => {
  const session = practiceSession(['One.', 'Two.']);
  const event = scoredEvent(session, randomUUID(), 0, 60, false);
  const first = await deliver(event, [env.webhookSecretNew]);
  assert.equal(first.status, 200);
  const again = await deliver(event, [env.webhookSecretNew], first.id);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { status: 'duplicate' });
  assert.equal(sqlValue(`SELECT attempt_count FROM practice_sessions WHERE id = '${session}'`), '1');
  assert.equal(sqlValue(`SELECT count(*) FROM webhook_events WHERE id = '${first.id}'`), '1');
});

test('a delivery signed with a retired or foreign secret is 401 and nothing is stored', async () => {
  const session = practiceSession(['One.']);
  const foreign = `whsec_${Buffer.from('a secret ClassConnect never had').toString('base64')}`;
  const result = await deliver(scoredEvent(session, randomUUID(), 0, 99, true), [foreign]);
  assert.equal(result.status, 401);
  assert.equal(result.body.code, 401);
  assert.equal(typeof result.body.error, 'string');
  assert.equal(sqlValue(`SELECT count(*) FROM webhook_events WHERE id = '${result.id}'`), '0');
  assert.equal(sqlValue(`SELECT attempt_count FROM practice_sessions WHERE id = '${session}'`), '0');
});

test('an event for a session that does not exist yet is 404, and a replay processes it once it does', async () => {
  const session = randomUUID();
  const event = {
    type: 'practice.sentences.extracted',
    timestamp: new Date().toISOString(),
    data: { session_id: session, sentences: ['First.', 'Second.'] },
  };
  const early = await deliver(event, [env.webhookSecretNew]);
  assert.equal(early.status, 404);
  assert.equal(sqlValue(`SELECT status FROM webhook_events WHERE id = '${early.id}'`), 'failed');

  const user = randomUUID();
  sql(`INSERT INTO auth.users (id) VALUES ('${user}')`);
  sql(`INSERT INTO practice_sessions (id, user_id, status, transcript) VALUES ('${session}', '${user}', 'processing', 'x')`);
  const replay = await fetch(functionUrl('practice-webhook', '/replay'), {
    method: 'POST',
    headers: { authorization: `Bearer ${await serviceRoleKey()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event_id: early.id }),
  });
  assert.equal(replay.status, 200, await replay.clone().text());
  assert.equal(sqlValue(`SELECT status FROM webhook_events WHERE id = '${early.id}'`), 'processed');
  assert.equal(sqlValue(`SELECT status FROM practice_sessions WHERE id = '${session}'`), 'analyzing');
});

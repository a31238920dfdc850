// voice-monitoring as the frontend and the teachers' dashboard use it: students' clients
// report session metrics and errors; a teacher reads the rollout summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertFunctionsError, newUser, sqlValue, supabaseFor } from '../lib/world.js';

const FUNCTION = 'voice-monitoring';

function metrics(implementation, connected, latency) {
  return {
    implementation_type: implementation,
    connection_success: connected,
    connection_time_ms: 240,
    avg_latency_ms: latency,
    p95_latency_ms: latency * 1.5,
    p99_latency_ms: latency * 2,
    audio_chunks_sent: 900,
    audio_chunks_received: 880,
    buffer_underruns: 1,
    reconnection_attempts: 0,
    duration_ms: 60000,
  };
}

test('students report metrics and errors; a teacher reads the summary with red flags (three students behind them) and a recommendation', async () => {
  const student = await newUser();
  const client = await supabaseFor(student.jwt);
  const reports = [
    metrics('webrtc', true, 120),
    metrics('webrtc', true, 140),
    metrics('webrtc', false, 0),
    metrics('websocket', true, 300),
    metrics('websocket', true, 320),
  ];
  for (const body of reports) {
    const { error } = await client.functions.invoke(`${FUNCTION}/metrics`, { body });
    assert.equal(error, null, String(error));
  }
  assert.equal(sqlValue(`SELECT count(*) FROM voice_session_metrics WHERE user_id = '${student.id}'`), '5');

  const reported = await client.functions.invoke(`${FUNCTION}/errors`, {
    body: {
      error_type: 'ice_failed',
      error_message: 'ICE connection failed',
      is_retryable: true,
      implementation_type: 'webrtc',
      context: { browser: 'chromium' },
    },
  });
  assert.equal(reported.error, null, String(reported.error));
  assert.equal(sqlValue(`SELECT count(*) FROM voice_session_errors WHERE user_id = '${student.id}'`), '1');

  // A red flag stands only with reports from three distinct users: two more students
  // whose WebRTC sessions fail too.
  for (let other = 0; other < 2; other += 1) {
    const classmate = await newUser();
    const { error } = await (await supabaseFor(classmate.jwt)).functions.invoke(`${FUNCTION}/metrics`, {
      body: metrics('webrtc', false, 0),
    });
    assert.equal(error, null, String(error));
  }

  const teacher = await newUser({ appRole: 'teacher' });
  const { data, error } = await (await supabaseFor(teacher.jwt)).functions.invoke(`${FUNCTION}/summary?hours=24`, {
    method: 'GET',
  });
  assert.equal(error, null, String(error));
  assert.equal(data.implementations.webrtc.sessions, 5);
  assert.equal(data.implementations.webrtc.users, 3);
  assert.equal(data.implementations.websocket.sessions, 2);
  // Each student's own rate first, then their mean, so that no student weighs more than
  // another (README, "the dashboard's numbers"): 2 of 3 for the first, 0 of 1 for each
  // classmate, whatever the sessions' total says (2 of 5).
  const expectedRate = (100 * (2 / 3) + 0 + 0) / 3;
  assert.ok(Math.abs(data.implementations.webrtc.success_rate_percent - expectedRate) < 0.01, JSON.stringify(data.implementations.webrtc));
  assert.equal(data.flag.name, 'voice_webrtc_migration');
  const names = data.red_flags.map((flag) => flag.name);
  assert.ok(names.includes('webrtc_success_rate'), JSON.stringify(data.red_flags));
  for (const flag of data.red_flags) {
    assert.equal(typeof flag.value, 'number');
    assert.equal(typeof flag.threshold, 'number');
  }
  assert.equal(data.recommendation, 'rollback');
});

test('a student reading the summary gets 403 as FunctionsHttpError', async () => {
  const student = await newUser();
  const result = await (await supabaseFor(student.jwt)).functions.invoke(`${FUNCTION}/summary?hours=24`, { method: 'GET' });
  await assertFunctionsError(result, 403, 'forbidden');
});

test('metrics with an unknown implementation are 400 naming the field and store nothing', async () => {
  const student = await newUser();
  const result = await (await supabaseFor(student.jwt)).functions.invoke(`${FUNCTION}/metrics`, {
    body: metrics('carrier-pigeon', true, 100),
  });
  const body = await assertFunctionsError(result, 400, 'invalid_request');
  assert.match(body.message, /implementation_type/);
  assert.equal(sqlValue(`SELECT count(*) FROM voice_session_metrics WHERE user_id = '${student.id}'`), '0');
});

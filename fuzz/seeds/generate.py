#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small, real-looking
inputs in each target's input format (see the top of fuzz/src/<target>.rs).

    python3 fuzz/seeds/generate.py

The output is committed; run this again only when a target's input format changes."""
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "corpus")
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")

SESSION = "6f1c0d56-2f0e-4f4e-9f5e-0c7c1f7f4a10"
ATTEMPT = "0b6b7f8e-81b4-4b8e-a3c2-1d2e3f405162"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def fields(mode, *parts):
    return bytes([mode]) + b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)


def jwt():
    tokens = json.load(open(os.path.join(FIXTURES, "jwt", "tokens.json")))
    wanted = ["hs256_teacher_is_valid", "es256_anon_is_valid", "rs256_service_role_is_valid",
              "alg_none_is_refused", "es_signature_under_an_rs256_header_with_the_ec_kid_is_refused",
              "hs256_keyed_with_the_rsa_public_key_is_refused", "expired_within_leeway_is_accepted"]
    for case in tokens["cases"]:
        if case["name"] in wanted:
            write("jwt", "raw_" + case["name"], fields(0, case["token"]))
    claims = json.dumps({"sub": "8d0fbd5c-0f43-4b5c-9d55-5c0e2f1b9a11", "role": "authenticated",
                         "aud": "authenticated", "exp": tokens["now"] + 3600, "iat": tokens["now"],
                         "app_metadata": {"role": "teacher"}})
    jwks = open(os.path.join(FIXTURES, "jwt", "jwks.json")).read()
    # mode bits: 0-1 configuration, 2-4 signer (1 and 6 HS256, 2 other secret, 3 and 4 EC, 5 wrong EC)
    write("jwt", "signed_hs256", fields(1 << 2, '{"alg":"HS256","typ":"JWT"}', claims))
    write("jwt", "signed_es256_kid", fields(3 << 2, '{"alg":"ES256","kid":"ec-1"}', claims))
    write("jwt", "hs256_signed_under_rs256_header", fields(6 << 2, '{"alg":"RS256","kid":"rsa-1","typ":"JWT"}', claims))
    write("jwt", "signed_es256_wrong_key", fields(5 << 2, '{"alg":"ES256"}', claims))
    write("jwt", "signed_es256_as_rs256", fields(3 << 2, '{"alg":"RS256","kid":"ec-1"}', claims))
    # What the first long run found: a signed header that is not UTF-8 JSON (refused now).
    write("jwt", "regression_header_not_utf8", fields(1 << 2, b'{"alg":"HS256","typ":"J\xa2T"}', claims))
    write("jwt", "jwks_fuzzed_es256", fields(1 | 3 << 2, jwks, '{"alg":"ES256","kid":"ec-1"}', claims))
    write("jwt", "jwks_fuzzed_raw", fields(1, jwks, tokens["cases"][0]["token"]))


def webhook():
    body = json.dumps({"type": "practice.attempt.scored", "timestamp": "2025-11-22T10:00:00Z",
                       "data": {"session_id": SESSION, "attempt_id": ATTEMPT, "sentence_index": 0,
                                "pronunciation_score": 87.5, "is_passed": True}})
    # mode: bit 7 timestamp near now, bits 5-6 signer (1 configured key, 2 another key)
    write("webhook", "signed", fields(0b1010_0000 | 62, SECRET, "msg_2nQ8XxL0aZ", "", "", body))
    write("webhook", "rotation", fields(0b1010_0001 | 62, SECRET + " whsec_c2Vjb25kLXNlY3JldC0xNi1ieXRlcw==",
                                        "msg_p5jXN8AQM9LWM0D4loKWxJek", "", "v1a,AAAA", body))
    write("webhook", "unsigned_list", fields(0b1000_0000 | 62, SECRET, "msg_1", "",
                                             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v2,xyz", body))
    write("webhook", "stale", fields(0, SECRET, "msg_1", "1600000000", "v1,AAAA", body))


def practice():
    at = "2025-11-22T10:00:05Z"
    events = {
        "transcript_improved": {"session_id": SESSION, "improved_transcript": "The quick brown fox."},
        "sentences_extracted": {"session_id": SESSION, "sentences": ["The quick brown fox.", "It jumps."]},
        "attempt_scored": {"session_id": SESSION, "attempt_id": ATTEMPT, "sentence_index": 1,
                           "pronunciation_score": 87.456, "is_passed": True,
                           "pronunciation_analysis": {"accuracy": 90}, "feedback_data": {"tips": ["slow down"]},
                           "transcription_results": {"text": "it jumps"},
                           "word_level_scores": [{"word": "it", "score": 91.5, "start_ms": 0, "end_ms": 180}]},
        "attempt_failed": {"session_id": SESSION, "attempt_id": ATTEMPT, "error_message": "audio too short"},
        "session_failed": {"session_id": SESSION, "error_message": "recording missing"},
    }
    for name, data in events.items():
        kind = "practice." + name.replace("_", ".", 1)
        write("practice_event", name, json.dumps({"type": kind, "timestamp": at, "data": data}))
    write("practice_event", "unknown_type", json.dumps({"type": "practice.session.created", "timestamp": at, "data": {}}))
    write("practice_event", "offset_timestamp", json.dumps({"type": "practice.session.failed",
                                                             "timestamp": "2025-11-22T12:00:05.123+02:00",
                                                             "data": events["session_failed"]}))


def demo():
    offer = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
             "a=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n")
    write("demo", "sdp_offer", bytes([0]) + offer.encode())
    batch = {"items": [
        {"interaction_type": "user_transcript", "transcript": "I like reading",
         "words": [{"word": "I", "start_ms": 0, "end_ms": 120, "confidence": 0.98}]},
        {"interaction_type": "assistant_transcript", "transcript": "Great! Read the next line."},
        {"interaction_type": "tool_call", "payload": {"name": "record_reading_metrics", "arguments": "{\"wpm\": 92}"}},
        {"interaction_type": "event", "payload": {"type": "response.done"}}]}
    write("demo", "interaction_batch", bytes([1]) + json.dumps(batch).encode())
    write("demo", "create_session", bytes([2]) + json.dumps({"demo_activity_id": SESSION}).encode())
    write("demo", "end_session", bytes([3]) + json.dumps({"telemetry": {"duration_ms": 61234, "turns": 8}}).encode())
    write("demo", "route_session", bytes([4]) + f"/sessions/{SESSION}/interactions?readflow".encode())
    write("demo", "route_activities", bytes([4]) + b"/activities?speed-quiz")


def monitoring():
    metrics = {"implementation_type": "webrtc", "connection_success": True, "connection_time_ms": 412.5,
               "avg_latency_ms": 180.2, "p95_latency_ms": 320, "p99_latency_ms": 480.75,
               "audio_chunks_sent": 1200, "audio_chunks_received": 1188, "buffer_underruns": 2,
               "reconnection_attempts": 0, "duration_ms": 95000, "session_id": SESSION}
    write("monitoring", "metrics", bytes([0]) + json.dumps(metrics).encode())
    error = {"error_type": "connection_failed", "error_message": "ICE failed", "stack_trace": "Error: ICE failed\n    at pc.oniceconnectionstatechange",
             "is_retryable": True, "implementation_type": "websocket", "context": {"attempt": 2}}
    write("monitoring", "error", bytes([1]) + json.dumps(error).encode())
    write("monitoring", "rollout", bytes([2]) + json.dumps({"percentage": 25, "reason": "week 2 of the rollout"}).encode())
    write("monitoring", "hours", bytes([3]) + b"168")


def requests():
    write("requests", "mint", bytes([0]) + json.dumps({"persona": "student-tutor", "language": "pt-BR", "activity_id": SESSION}).encode())
    write("requests", "mint_demo", bytes([0]) + json.dumps({"persona": "demo-guide"}).encode())
    write("requests", "refresh", bytes([1]) + json.dumps({"sessionId": SESSION}).encode())
    write("requests", "search", bytes([2]) + json.dumps({"query": "  When did the Apollo 11 crew land on the Moon? ", "locale": "es", "max_citations": 3}).encode())


def http():
    headers = "origin: https://app.example.org\ncontent-type: application/json; charset=utf-8\nx-request-id: req-123\nspin-client-addr: 127.0.0.1:52344\nauthorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"
    write("http", "post_json", fields(0, "https://app.example.org, https://admin.example.org/", "POST", "/sessions/abc/end",
                                       "type=readflow&q=caf%C3%A9+au+lait&x", headers, '{"telemetry": {"turns": 3}}'))
    write("http", "preflight", fields(0, "https://app.example.org", "OPTIONS", "", "",
                                       "origin: https://evil.example.com\naccess-control-request-method: POST", ""))
    write("http", "any_origin_get", fields(2, "*", "GET", "/activities", "type=speed-quiz&hours=24",
                                            "spin-client-addr: [::1]:8080\ncontent-type: text/plain", ""))


def variables():
    write("variables", "origins", bytes([0]) + b"https://app.example.org, http://localhost:5173/\thttps://admin.example.org")
    write("variables", "secrets", bytes([1]) + (SECRET + " whsec_c2Vjb25kLXNlY3JldC0xNi1ieXRlcw==").encode())
    jwks = open(os.path.join(FIXTURES, "jwt", "jwks.json")).read()
    write("variables", "auth", fields(2, "super-secret-jwt-token-with-at-least-32-characters-long", jwks))
    write("variables", "ttl", bytes([3]) + b" 3600 ")
    write("variables", "redact", bytes([4]) + b"connect postgres://app:hunter2@db:5432/postgres failed; key sk-proj-abcdefghijklmnop password=hunter2")


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    for make in (jwt, webhook, practice, demo, monitoring, requests, http, variables):
        make()

<?php
// An application backend for wschat in plain PHP (no Composer package): it signs login tokens (HS256, the
// secret wschat reads with --auth-key) and calls the server API (--api, --api-key-file). The environment
// names the files and the API: WSCHAT_SECRET_FILE, WSCHAT_API (http://127.0.0.1:8080), WSCHAT_API_KEY_FILE.
//
//   php backend.php token ACCOUNT [NAME]     prints a token for ACCOUNT, valid 10 minutes
//   php backend.php say ROOM TEXT            a message from the server to ROOM (Gateway::sendToGroup)
//   php backend.php send-user ACCOUNT TEXT   TEXT verbatim to ACCOUNT's connections (Gateway::sendToUid)
//   php backend.php online ACCOUNT           Gateway::isUidOnline
//   php backend.php kick ACCOUNT [REASON]    Gateway::closeClient, for every connection of ACCOUNT

function b64url(string $raw): string {
    return rtrim(strtr(base64_encode($raw), '+/', '-_'), '=');
}

function wschat_token(string $account, ?string $name = null, int $ttl = 600): string {
    $secret = file_get_contents(getenv('WSCHAT_SECRET_FILE')); // all of its bytes, as wschat reads it
    $claims = ['sub' => $account, 'exp' => time() + $ttl];
    if ($name !== null) {
        $claims['name'] = $name;
    }
    $signed = b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT'])) . '.' . b64url(json_encode($claims));
    return $signed . '.' . b64url(hash_hmac('sha256', $signed, $secret, true));
}

function wschat_api(string $method, string $path, ?array $body = null): array {
    $key = trim(file_get_contents(getenv('WSCHAT_API_KEY_FILE')));
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => "Authorization: Bearer $key\r\nContent-Type: application/json\r\n",
        'content' => $body === null ? '' : json_encode($body),
        'ignore_errors' => true, // an error answer is JSON too
        'timeout' => 5,
    ]]);
    return json_decode(file_get_contents(getenv('WSCHAT_API') . $path, false, $context), true) ?? ['ok' => false];
}

$args = array_slice($argv, 1);
switch ($args[0] ?? '') {
    case 'token':
        echo wschat_token($args[1], $args[2] ?? null), "\n";
        exit(0);
    case 'say':
        $answer = wschat_api('POST', '/api/say', ['room' => $args[1], 'content' => $args[2]]);
        break;
    case 'send-user':
        $answer = wschat_api('POST', '/api/send', ['to' => ['user_id' => $args[1]], 'data' => $args[2]]);
        break;
    case 'online':
        $answer = wschat_api('GET', '/api/users/' . rawurlencode($args[1]));
        break;
    case 'kick':
        $answer = wschat_api('POST', '/api/close', ['user_id' => $args[1], 'reason' => $args[2] ?? 'kicked']);
        break;
    default:
        fwrite(STDERR, "usage: php backend.php token|say|send-user|online|kick ...\n");
        exit(2);
}
echo json_encode($answer), "\n";
exit($answer['ok'] ? 0 : 1);

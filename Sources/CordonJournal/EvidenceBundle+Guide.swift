import CordonCore
import Foundation

extension EvidenceBundle {
    /// The script in VERIFY.md: only a POSIX shell, sha256sum, openssl (3.0+), jq and
    /// coreutils. It is the exact text the tests run. `EXPECTED_KEY` (required) is the
    /// fingerprint the journal's operator published; `TSA_CA` (optional) the time-stamping
    /// authority's CA certificate.
    static let script = #"""
        set -eu
        : "${EXPECTED_KEY:?set EXPECTED_KEY to the signing key fingerprint the journal's operator published}"
        t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
        fail() { echo "FAIL: $*"; exit 1; }
        # 1. Every file is in the manifest and matches it; nothing else is here.
        sha256sum --quiet -c MANIFEST.sha256 || fail "a file differs from MANIFEST.sha256"
        cut -c67- MANIFEST.sha256 | sort > "$t/listed.txt"
        find . -type f ! -name MANIFEST.sha256 | sed 's|^\./||' | sort > "$t/present.txt"
        cmp -s "$t/listed.txt" "$t/present.txt" || fail "files were added to or removed from the bundle"
        [ -z "$(tail -c 1 chain.jsonl)" ] || fail "chain.jsonl does not end with a newline (a line no step below would hash)"
        # 2. Every record's hash is the SHA-256 of its line; every record links to the one before.
        prev=""
        : > "$t/hashes.txt"
        while IFS= read -r line; do
          seq=$(printf '%s' "$line" | jq -r .seq)
          link=$(printf '%s' "$line" | jq -r .prev)
          if [ -n "$prev" ] && [ "$link" != "$prev" ]; then fail "record $seq does not link to the record before it"; fi
          prev=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
          echo "$seq $prev" >> "$t/hashes.txt"
        done < chain.jsonl
        # 3. The checkpoint signs the last record's hash, with the key keys.json names.
        cseq=$(jq -r .seq checkpoint.json); chash=$(jq -r .hash checkpoint.json)
        [ "$(tail -n 1 "$t/hashes.txt")" = "$cseq $chash" ] || fail "the checkpoint does not sign the chain's last record"
        signer=$(openssl pkey -pubin -in keys/signer.pem -outform DER | sha256sum | cut -d' ' -f1)
        [ "$signer" = "$(jq -r .key checkpoint.json)" ] || fail "keys/signer.pem is not the key that signed the checkpoint"
        printf 'cordon-checkpoint:v1:%s:%s' "$cseq" "$chash" > "$t/msg.bin"
        jq -r .signature checkpoint.json | base64 -d > "$t/sig.bin"
        openssl pkeyutl -verify -pubin -inkey keys/signer.pem -rawin -in "$t/msg.bin" -sigfile "$t/sig.bin" > /dev/null || fail "the checkpoint's signature is invalid"
        # 4. The signer is the journal's key, or a session key the journal's key certified.
        root=$(openssl pkey -pubin -in keys/root.pem -outform DER | sha256sum | cut -d' ' -f1)
        [ "$root" = "$(jq -r .root.fingerprint keys.json)" ] || fail "keys/root.pem is not the key keys.json names"
        if jq -e .session keys.json > /dev/null; then
          [ "$cseq" -ge "$(jq -r .session.from_seq keys.json)" ] || fail "the session key signed before it was certified"
          printf 'cordon-session-key:v1:%s:%s:%s' "$signer" "$root" "$(jq -r .session.from_seq keys.json)" > "$t/msg.bin"
          jq -r .session.certificate keys.json | base64 -d > "$t/sig.bin"
          if [ "$(jq -r .root.algorithm keys.json)" = ed25519 ]; then
            openssl pkeyutl -verify -pubin -inkey keys/root.pem -rawin -in "$t/msg.bin" -sigfile "$t/sig.bin" > /dev/null || fail "the session key's certificate is invalid"
          else
            openssl dgst -sha256 -verify keys/root.pem -signature "$t/sig.bin" "$t/msg.bin" > /dev/null || fail "the session key's certificate is invalid"
          fi
        else
          [ "$signer" = "$root" ] || fail "the checkpoint was signed by a key the journal's key did not certify"
        fi
        # 5. The journal's key is the one its operator published.
        [ "$root" = "$EXPECTED_KEY" ] || fail "signed under key $root, not the expected key $EXPECTED_KEY"
        # 6. The derived files are those the chain's bundle.exported record names.
        incident=$(jq -r .incident members.json)
        named=$(jq -r --arg i "$incident" 'select(.kind == "bundle.exported" and .data.incident == $i) | .data.contents_sha256' chain.jsonl | tail -n 1)
        [ "$(sha256sum CONTENTS.sha256 | cut -d' ' -f1)" = "$named" ] || fail "CONTENTS.sha256 is not the one the journal recorded"
        sha256sum --quiet -c CONTENTS.sha256 || fail "a file differs from CONTENTS.sha256 (timelines, evidence, members, VERIFY.md)"
        cut -c67- CONTENTS.sha256 > "$t/contents.txt"
        while IFS= read -r f; do
          case "$f" in
            chain.jsonl|checkpoint.json|keys.json|keys/root.pem|keys/signer.pem|CONTENTS.sha256) ;;
            witness/*) printf '%s\n' "$f" | grep -Eqx 'witness/[0-9]+\.(json|head|tsr)' || fail "$f is not a witness receipt" ;;
            *) grep -qxF -- "$f" "$t/contents.txt" || fail "$f is not covered by CONTENTS.sha256" ;;
          esac
        done < "$t/listed.txt"
        # 7. Every evidence file the incident's records cite is here (and matches, by step 6).
        jq -r --slurpfile m members.json 'select(.seq as $s | $m[0].seqs | index($s)) | (.data.evidence // [])[] | .sha256' chain.jsonl \
          | sort -u > "$t/cited.txt"
        while read -r h; do grep -q "^$h  " evidence.sha256 || fail "evidence $h is missing"; done < "$t/cited.txt"
        awk '$2 != "evidence/" $1 { exit 1 }' evidence.sha256 || fail "evidence.sha256 names a file after another hash"
        [ ! -s evidence.sha256 ] || sha256sum --quiet -c evidence.sha256 || fail "an evidence file does not match its name"
        # 8. Witnesses: each receipt names this checkpoint; time-stamp tokens verify with TSA_CA.
        for r in $(ls witness/*.json 2>/dev/null); do
          n=${r%.json}
          [ "$(jq -c '{seq,hash,signature,key}' "$n.head")" = "$(jq -c '{seq,hash,signature,key}' checkpoint.json)" ] \
            || fail "$n.head is not the checkpoint's head"
          case "$(jq -r .witness "$r")" in tsa:*) [ -f "$n.tsr" ] || fail "$n.tsr, the time-stamp token, is missing" ;; esac
          if [ -f "$n.tsr" ]; then
            if [ -n "${TSA_CA:-}" ]; then
              openssl ts -verify -in "$n.tsr" -data "$n.head" -CAfile "$TSA_CA" > /dev/null 2>&1 || fail "$n.tsr does not verify"
              echo "witness $(jq -r .witness "$r"): $(openssl ts -reply -in "$n.tsr" -text 2>/dev/null | grep 'Time stamp:')"
            else
              echo "witness $(jq -r .witness "$r"): not checked (set TSA_CA to the authority's CA certificate)"
            fi
          else
            echo "witness $(jq -r .witness "$r"): compare $n.head with what it holds for seq $cseq"
          fi
        done
        echo "OK: $(wc -l < chain.jsonl) records to seq $cseq signed under key $root, $(wc -l < "$t/cited.txt") evidence file(s), $(wc -l < "$t/listed.txt") files verified"
        """#

    static func verifyGuide(incident: String, rootFingerprint: String, records: Int) -> String {
        """
        # Verifying this evidence bundle

        Incident `\(incident)`: \(records) record(s) of its own, in a chain of Cordon journal
        records signed by one checkpoint. **This bundle says it was signed under the journal
        key `\(rootFingerprint)`.** That proves nothing until you compare it with the
        fingerprint the journal's operator published somewhere its writers cannot change
        (`cordon journal key` prints it): the check below takes the published one as
        `EXPECTED_KEY` and fails if they differ.

        ## What is here

        | file | what |
        |---|---|
        | `chain.jsonl` | journal records from the incident's first to the checkpoint, one per line, as the exact bytes that were hashed (RFC 8785 canonical JSON of each record without its `hash`); records of other incidents in between keep the chain unbroken, and the `bundle.exported` record names the SHA-256 of `CONTENTS.sha256` |
        | `checkpoint.json` | the checkpoint: a signature over the ASCII text `cordon-checkpoint:v1:SEQ:HASH` of the last record |
        | `keys.json`, `keys/signer.pem`, `keys/root.pem` | the key that signed the checkpoint, and the journal's key: the same key, or a KMS key that certified the signer as a session key (`cordon-session-key:v1:SIGNER:ROOT:FROMSEQ`) |
        | `CONTENTS.sha256` | the SHA-256 of the files derived from the journal: `members.json`, `evidence/`, `evidence.sha256`, the timelines, this file |
        | `members.json` | which records belong to this incident (`seqs`) |
        | `evidence/` and `evidence.sha256` | the evidence the incident's records cite, each file named by its SHA-256 |
        | `timeline.json`, `.csv`, `.md`, `.html` | the incident's timeline |
        | `witness/N.json`, `N.head`, `N.tsr` | what each witness outside the journal's host answered for the checkpoint: the head it was given and, from a time-stamping authority, its RFC 3161 token |
        | `MANIFEST.sha256` | every file above |

        Each record's `hash` is the SHA-256 of its line, and each record's `prev` is the hash
        of the record before it, so a changed, inserted, deleted or reordered record breaks
        the chain; the checkpoint's signature covers the last hash, and with it everything
        before, the `bundle.exported` record among them, and through it every derived file.

        ## How to check it

        With a POSIX shell, `sha256sum`, `openssl` (3.0 or later), `jq` and coreutils, run these
        commands in this directory with `EXPECTED_KEY` set to the published fingerprint (and,
        to check time-stamp tokens, `TSA_CA` set to the authority's CA certificate file).
        They print `OK: …` and exit 0 when everything holds, and `FAIL: …` with a non-zero
        exit status otherwise.

        ```sh
        \(script)
        ```

        A time-stamp token can also be read with `openssl ts -reply -in witness/N.tsr -text`.
        For a `file:` or `s3:` witness, compare `witness/N.head` with the line (or object)
        the witness holds for the checkpoint's seq: the same line proves the journal had
        reached this checkpoint when the witness took it.

        """
    }
}

"""database roles that can only do their job: checked write functions, finite rating values

Revision ID: 0005_roles
Revises: 0004_vlm_batches
Create Date: 2026-12-06 07:00:00

* ``ix_ratings_assignment``: one item's answers, looked up on every answer (both dialects).
* ``ratings.value`` must be finite (``ck_ratings_value_finite``): NaN and ±Infinity are
  refused whoever writes (a CHECK constraint on PostgreSQL; on SQLite, which stores NaN as
  NULL, two ``BEFORE`` triggers refuse ±Infinity, so a later batch migration that rebuilds
  ``ratings`` must create them again). Values already stored that are not finite become
  NULL (the rating stays, as missing) and their ``rating_means`` rows are recounted.

The rest is PostgreSQL only (SQLite is a single user's database; the library validates
there):

* The tagging queue and human ratings are written through ``SECURITY DEFINER`` functions
  that check the caller and the codebook, so that ``itagger secure-db`` can take every
  direct write on ``ratings`` and ``assignments`` away from taggers:

  - ``itagger_claim_next(study, rater, kind, image)``: the rater's next item (resume an
    assigned one; add the gold/repeat item ``kind``/``image`` if it is due; else claim an
    open slot in the rater's own image order), serialised per rater by an advisory lock
    the function takes as the owner;
  - ``itagger_set_status(assignment, status)``: mark one's own item done, skipped or
    assigned again;
  - ``itagger_record_rating(...)``: record or change one's own answer to one item (staff:
    or image), validated against the codebook (attribute exists, value one of its levels or
    within its range and finite) and the study (the study's codebook and mode); a tagger
    answers only items of their own queue, so a study's k raters per image hold;
  - ``itagger_machine_answer(image, attribute)``: the newest VLM answer an assisted rater
    is shown, to a tagger only for an image of an assisted study in their own queue.

  A caller that is a member of ``itagger_tagger`` (and of no staff role) may act only as
  the rater mapped to its login role (``itagger_rater_of(session_user)``); every other
  caller names the rater. Refusals carry SQLSTATE ``42501`` (not allowed), ``IT422`` (an
  answer the codebook does not allow) or ``IT409`` (the item cannot take it), which the
  library turns into :class:`~itagger_lib.errors.PermissionDeniedError`,
  :class:`~itagger_lib.errors.RatingError` and :class:`~itagger_lib.errors.AssignmentError`.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0005_roles"
down_revision = "0004_vlm_batches"
branch_labels = None
depends_on = None

_FINITE = "value IS NULL OR (value > '-Infinity'::float8 AND value < 'Infinity'::float8)"

# A tagger: a member of itagger_tagger and of no staff role (a superuser is a member of all).
_IS_TAGGER = """CREATE OR REPLACE FUNCTION itagger_is_tagger() RETURNS boolean
   LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
     SELECT coalesce(pg_has_role(session_user, to_regrole('itagger_tagger'), 'MEMBER'), false)
        AND NOT coalesce(pg_has_role(session_user, to_regrole('itagger_researcher'), 'MEMBER'), false)
        AND NOT coalesce(pg_has_role(session_user, to_regrole('itagger_admin'), 'MEMBER'), false) $$"""

_ACTING_RATER = """CREATE OR REPLACE FUNCTION itagger_acting_rater(wanted text) RETURNS text
   LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     me text;
   BEGIN
     IF itagger_is_tagger() THEN
       me := itagger_rater_of(session_user);
       IF wanted IS DISTINCT FROM me THEN
         RAISE EXCEPTION 'a tagger rates and claims only as themselves (%), not as %', me,
           coalesce(wanted, 'an open slot') USING ERRCODE = '42501';
       END IF;
     END IF;
     RETURN wanted;
   END $$"""

_ANSWER_ERROR = """CREATE OR REPLACE FUNCTION itagger_answer_error(book integer, attr text, v float8, t text)
   RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     definition jsonb;
     a jsonb;
     kind text;
     lv jsonb;
     labels text[];
     part text;
   BEGIN
     SELECT c.definition INTO definition FROM codebooks c WHERE c.id = book;
     IF definition IS NULL THEN
       RETURN format('no codebook with id %s', book);
     END IF;
     SELECT x INTO a FROM jsonb_array_elements(definition -> 'attributes') x WHERE x ->> 'key' = attr LIMIT 1;
     IF a IS NULL THEN
       RETURN format('codebook %s version %s has no attribute %s', definition ->> 'name',
                     definition ->> 'version', quote_literal(attr));
     END IF;
     kind := a ->> 'type';
     IF v IS NOT NULL AND NOT (v > '-Infinity'::float8 AND v < 'Infinity'::float8) THEN
       RETURN format('attribute %s: %s is not a finite number', quote_literal(attr), v);
     END IF;
     IF kind = 'continuous' THEN
       IF v IS NULL OR t IS NOT NULL OR v < (a ->> 'min')::float8 OR v > (a ->> 'max')::float8 THEN
         RETURN format('attribute %s: %s is not allowed; give a number from %s to %s', quote_literal(attr),
                       coalesce(v::text, t, 'nothing'), a ->> 'min', a ->> 'max');
       END IF;
       RETURN NULL;
     END IF;
     SELECT array_agg(CASE WHEN jsonb_typeof(l) = 'object' THEN l -> 'value' ELSE l END ->> 0 ORDER BY i)
       INTO labels FROM jsonb_array_elements(a -> 'levels') WITH ORDINALITY AS e(l, i);
     IF kind = 'multi_label' THEN
       IF v IS NOT NULL OR t IS NULL THEN
         RETURN format('attribute %s: give a list of zero or more of %s', quote_literal(attr), labels);
       END IF;
       FOREACH part IN ARRAY string_to_array(t, ';') LOOP
         IF part <> '' AND NOT part = ANY (labels) THEN
           RETURN format('attribute %s: %s is not one of %s', quote_literal(attr), quote_literal(part), labels);
         END IF;
       END LOOP;
       RETURN NULL;
     END IF;
     FOR lv, part IN
       SELECT CASE WHEN jsonb_typeof(l) = 'object' THEN l -> 'value' ELSE l END, (i - 1)::text
         FROM jsonb_array_elements(a -> 'levels') WITH ORDINALITY AS e(l, i)
     LOOP
       IF jsonb_typeof(lv) = 'string' AND t = lv ->> 0 AND v = part::float8 THEN
         RETURN NULL;
       ELSIF jsonb_typeof(lv) = 'number' AND t IS NULL AND v = (lv ->> 0)::float8 THEN
         RETURN NULL;
       END IF;
     END LOOP;
     RETURN format('attribute %s: %s is not allowed; give one of %s', quote_literal(attr),
                   coalesce(t, v::text, 'nothing'), labels);
   END $$"""

# The rater's own image order (a·id + b) mod (2³¹ − 1), a and b from SHA-256(seed:rater), as
# itagger_lib.ratings.queue.rater_permutation computes them.
_CLAIM_NEXT = """CREATE OR REPLACE FUNCTION itagger_claim_next(study integer, rater text, kind text, image integer)
   RETURNS SETOF assignments LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     who text := itagger_acting_rater(rater);
     info studies;
     item assignments;
     pos integer;
     n_done integer;
     due boolean := false;
     every integer;
     share float8;
     digest bytea;
     a numeric;
     b numeric;
     slot_id integer;
   BEGIN
     IF coalesce(who, '') = '' THEN
       RAISE EXCEPTION 'a queue item is claimed for a named rater' USING ERRCODE = 'IT409';
     END IF;
     SELECT * INTO info FROM studies s WHERE s.id = study;
     IF NOT FOUND THEN
       RAISE EXCEPTION 'no study with id %', study USING ERRCODE = 'IT409';
     END IF;
     PERFORM pg_advisory_xact_lock(('x' || encode(substr(sha256(convert_to(study::text || ':' || who, 'UTF8')),
                                   1, 8), 'hex'))::bit(64)::bigint);
     SELECT * INTO item FROM assignments x WHERE x.study_id = study AND x.rater = who AND x.status = 'assigned'
      ORDER BY x.position LIMIT 1;
     IF FOUND THEN
       RETURN NEXT item;
       RETURN;
     END IF;
     SELECT coalesce(max(x.position), 0) + 1,
            count(*) FILTER (WHERE x.kind = 'normal' AND x.status = 'done')
       INTO pos, n_done FROM assignments x WHERE x.study_id = study AND x.rater = who;
     IF kind = 'gold' THEN
       every := greatest(1, coalesce((info.design ->> 'gold_every')::integer, 10));
       due := (info.design -> 'gold') ? image::text
          AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.study_id = study AND x.rater = who
                            AND x.kind = 'gold' AND x.image_id = image)
          AND n_done >= every * (SELECT count(DISTINCT x.image_id) FROM assignments x
                                  WHERE x.study_id = study AND x.rater = who AND x.kind = 'gold');
     ELSIF kind = 'repeat' THEN
       share := coalesce((info.design ->> 'retest_share')::float8, 0);
       due := share > 0
          AND (SELECT count(DISTINCT x.image_id) FROM assignments x
                WHERE x.study_id = study AND x.rater = who AND x.kind = 'repeat') < floor(n_done * share)
          AND EXISTS (SELECT 1 FROM assignments x WHERE x.study_id = study AND x.rater = who
                        AND x.kind = 'normal' AND x.status = 'done' AND x.image_id = image)
          AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.study_id = study AND x.rater = who
                            AND x.kind = 'repeat' AND x.image_id = image);
     ELSIF kind IS NOT NULL THEN
       RAISE EXCEPTION 'item kind % is not gold|repeat', kind USING ERRCODE = 'IT409';
     END IF;
     IF due THEN
       INSERT INTO assignments (study_id, image_id, slot, rater, position, kind, status, assigned_at)
       VALUES (study, image, -1, who, pos, kind, 'assigned', now()) RETURNING * INTO item;
       RETURN NEXT item;
       RETURN;
     END IF;
     digest := sha256(convert_to(info.seed::text || ':' || who, 'UTF8'));
     a := ('x' || encode(substr(digest, 1, 8), 'hex'))::bit(64)::bigint::numeric;
     b := ('x' || encode(substr(digest, 9, 8), 'hex'))::bit(64)::bigint::numeric;
     IF a < 0 THEN a := a + 18446744073709551616; END IF;
     IF b < 0 THEN b := b + 18446744073709551616; END IF;
     a := mod(a, 2147483646) + 1;
     b := mod(b, 2147483647);
     SELECT x.id INTO slot_id FROM assignments x
      WHERE x.study_id = study AND x.status = 'open' AND x.kind = 'normal'
        AND x.image_id NOT IN (SELECT m.image_id FROM assignments m WHERE m.study_id = study AND m.rater = who)
      ORDER BY (x.image_id::bigint * a::bigint + b::bigint) % 2147483647, x.slot
      LIMIT 1 FOR UPDATE SKIP LOCKED;
     IF slot_id IS NULL THEN
       RETURN;
     END IF;
     UPDATE assignments x SET rater = who, position = pos, status = 'assigned', assigned_at = now()
      WHERE x.id = slot_id RETURNING * INTO item;
     RETURN NEXT item;
   END $$"""

_SET_STATUS = """CREATE OR REPLACE FUNCTION itagger_set_status(assignment integer, status text) RETURNS void
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     owner_rater text;
   BEGIN
     IF status IS NULL OR status NOT IN ('assigned', 'done', 'skipped') THEN
       RAISE EXCEPTION 'assignment %: status % is not assigned|done|skipped', assignment, status
         USING ERRCODE = 'IT409';
     END IF;
     SELECT x.rater INTO owner_rater FROM assignments x WHERE x.id = assignment;
     IF NOT FOUND THEN
       RAISE EXCEPTION 'no assignment with id %', assignment USING ERRCODE = 'IT409';
     END IF;
     PERFORM itagger_acting_rater(owner_rater);
     UPDATE assignments x SET status = itagger_set_status.status,
            completed_at = CASE WHEN itagger_set_status.status = 'assigned' THEN NULL ELSE now() END
      WHERE x.id = assignment;
   END $$"""

_RECORD_RATING = """CREATE OR REPLACE FUNCTION itagger_record_rating(
     assignment integer, image integer, attr text, book integer, rater text, v float8, t text,
     rating_mode text, dwell integer, session text, complete boolean) RETURNS bigint
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     who text := itagger_acting_rater(rater);
     tagger boolean := itagger_is_tagger();
     item assignments;
     info studies;
     problem text;
     rating_id bigint;
   BEGIN
     IF assignment IS NOT NULL THEN
       SELECT * INTO item FROM assignments x WHERE x.id = assignment;
       IF NOT FOUND THEN
         RAISE EXCEPTION 'no assignment with id %', assignment USING ERRCODE = 'IT409';
       END IF;
       IF item.rater IS DISTINCT FROM who THEN
         RAISE EXCEPTION 'assignment % (image %) belongs to %, not %', assignment, item.image_id,
           coalesce(item.rater, 'nobody yet'), who USING ERRCODE = '42501';
       END IF;
       IF item.status NOT IN ('assigned', 'done') THEN
         RAISE EXCEPTION 'assignment % (image %) is %: it takes no answers', assignment, item.image_id,
           item.status USING ERRCODE = 'IT409';
       END IF;
       SELECT * INTO info FROM studies s WHERE s.id = item.study_id;
       image := item.image_id;
       book := coalesce(book, info.codebook_id);
       rating_mode := coalesce(rating_mode, info.mode);
       IF tagger AND (book <> info.codebook_id OR rating_mode <> info.mode) THEN
         RAISE EXCEPTION 'study % is rated with codebook % in % mode', info.name, info.codebook_id, info.mode
           USING ERRCODE = '42501';
       END IF;
     ELSIF tagger THEN
       RAISE EXCEPTION 'a tagger rates the items of their queue only (claim one first)' USING ERRCODE = '42501';
     ELSIF NOT EXISTS (SELECT 1 FROM images i WHERE i.id = image) THEN
       RAISE EXCEPTION 'no image with id %', image USING ERRCODE = 'IT409';
     END IF;
     rating_mode := coalesce(rating_mode, 'blind');
     IF rating_mode NOT IN ('blind', 'assisted') THEN
       RAISE EXCEPTION 'mode % is not blind|assisted', rating_mode USING ERRCODE = 'IT422';
     END IF;
     problem := itagger_answer_error(book, attr, v, t);
     IF problem IS NOT NULL THEN
       RAISE EXCEPTION '%', problem USING ERRCODE = 'IT422';
     END IF;
     IF assignment IS NOT NULL THEN
       SELECT r.id INTO rating_id FROM ratings r WHERE r.assignment_id = assignment AND r.rater = who
          AND r.attribute = attr AND r.codebook_id = book ORDER BY r.id LIMIT 1 FOR UPDATE;
     ELSE
       SELECT r.id INTO rating_id FROM ratings r WHERE r.image_id = image AND r.assignment_id IS NULL
          AND r.source = 'human' AND r.rater = who AND r.attribute = attr AND r.codebook_id = book
        ORDER BY r.id LIMIT 1 FOR UPDATE;
     END IF;
     IF rating_id IS NOT NULL THEN
       UPDATE ratings r SET value = v, value_text = t, mode = rating_mode, dwell_ms = dwell,
              session_id = session, updated_at = now() WHERE r.id = rating_id;
     ELSE
       INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, value_text, mode,
                            study_id, assignment_id, position, dwell_ms, session_id, is_repeat, is_gold,
                            repeat_index, rated_at)
       VALUES (image, attr, book, who, 'human', v, t, rating_mode, item.study_id, item.id, item.position,
               dwell, session, coalesce(item.kind = 'repeat', false), coalesce(item.kind = 'gold', false),
               CASE WHEN item.kind = 'repeat' THEN 1 ELSE 0 END, now())
       RETURNING id INTO rating_id;
     END IF;
     IF assignment IS NOT NULL AND complete THEN
       UPDATE assignments x SET status = 'done', completed_at = now() WHERE x.id = assignment;
     END IF;
     RETURN rating_id;
   END $$"""

# What an assisted rater is shown: the newest VLM answer (VLM ratings carry no study, so
# row-level security hides them from taggers); a tagger sees it only for an image of an
# assisted study in their own queue.
_MACHINE_ANSWER = """CREATE OR REPLACE FUNCTION itagger_machine_answer(image integer, attr text)
   RETURNS TABLE (answer float8, answer_text text)
   LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
   BEGIN
     IF itagger_is_tagger() THEN  -- (itagger_rater_of exists only on a secured database)
       IF NOT EXISTS (SELECT 1 FROM assignments x JOIN studies s ON s.id = x.study_id
                       WHERE x.image_id = image AND x.rater = itagger_rater_of(session_user)
                         AND s.mode = 'assisted') THEN
         RETURN;
       END IF;
     END IF;
     RETURN QUERY SELECT r.value, r.value_text FROM ratings r
      WHERE r.image_id = image AND r.attribute = attr AND r.source = 'vlm' ORDER BY r.id DESC LIMIT 1;
   END $$"""

FUNCTIONS = (
    ("itagger_is_tagger()", _IS_TAGGER),
    ("itagger_acting_rater(text)", _ACTING_RATER),
    ("itagger_answer_error(integer, text, float8, text)", _ANSWER_ERROR),
    ("itagger_claim_next(integer, text, text, integer)", _CLAIM_NEXT),
    ("itagger_set_status(integer, text)", _SET_STATUS),
    (
        "itagger_record_rating(integer, integer, text, integer, text, float8, text, text, integer, text, "
        "boolean)",
        _RECORD_RATING,
    ),
    ("itagger_machine_answer(integer, text)", _MACHINE_ANSWER),
)


_SQLITE_NOT_FINITE = "{row}.value IS NOT NULL AND abs({row}.value) > 1.7976931348623157e308"
_SQLITE_TRIGGER = (
    "CREATE TRIGGER ratings_value_finite_{op} BEFORE {event} ON ratings WHEN "
    + _SQLITE_NOT_FINITE.format(row="NEW")
    + " BEGIN SELECT RAISE(ABORT, 'ck_ratings_value_finite: a rating value must be a finite number'); END"
)


def _sqlite_clear_infinities() -> None:
    """Infinite values become NULL; their rating_means rows are recounted from scratch (the
    SQLite triggers keep running sums, and ``inf - inf`` would leave NaN behind)."""
    # the statistics statements of 0003 (the schema they read is unchanged since)
    levels = importlib.import_module("itagger_lib.db.migrations.versions.0003_levels")
    keys = "(image_id, attribute) IN (SELECT image_id, attribute FROM itagger_nonfinite)"
    op.execute(
        "CREATE TEMPORARY TABLE itagger_nonfinite AS SELECT DISTINCT image_id, attribute FROM ratings "
        f"WHERE {_SQLITE_NOT_FINITE.format(row='ratings')}"
    )
    op.execute(f"DELETE FROM rating_means WHERE {keys}")
    op.execute(f"UPDATE ratings SET value = NULL WHERE {_SQLITE_NOT_FINITE.format(row='ratings')}")
    op.execute(
        "INSERT INTO rating_means (image_id, attribute, n, total, mean) SELECT r.image_id, r.attribute, "
        "count(*), sum(r.value), avg(r.value) FROM ratings r WHERE "
        + levels._COUNTED.format(row="r")
        + " AND (r.image_id, r.attribute) IN (SELECT image_id, attribute FROM itagger_nonfinite)"
        " GROUP BY r.image_id, r.attribute"
    )
    op.execute(levels._SUMMARY.format(where=f"WHERE {keys}"))
    op.execute(levels._MODE.format(where=f"WHERE {keys}"))
    op.execute("DROP TABLE itagger_nonfinite")


def upgrade() -> None:
    # one item's answers are looked up on every answer given (both dialects)
    op.create_index("ix_ratings_assignment", "ratings", ["assignment_id"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_clear_infinities()
        op.execute(_SQLITE_TRIGGER.format(op="insert", event="INSERT"))
        op.execute(_SQLITE_TRIGGER.format(op="update", event="UPDATE OF value"))
        return
    if op.get_bind().dialect.name != "postgresql":
        return
    # impossible values stored before: kept as missing (the rating_means trigger recounts them)
    op.execute(f"UPDATE ratings SET value = NULL WHERE NOT ({_FINITE})")
    op.execute(f"ALTER TABLE ratings ADD CONSTRAINT ck_ratings_value_finite CHECK ({_FINITE})")
    for signature, body in FUNCTIONS:
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    op.drop_index("ix_ratings_assignment", table_name="ratings")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ratings_value_finite_insert")
        op.execute("DROP TRIGGER IF EXISTS ratings_value_finite_update")
        return
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature, _ in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ck_ratings_value_finite")

/*
 * fuzz_enrol.c - libFuzzer harness for the strings a person pastes into
 * devid-agent: enrolment codes (endorse) and endorsements (enroll).
 * Either may come from anyone who can put text in front of the user.
 *
 * The first input byte picks what is parsed: an enrolment code, an
 * endorsement, or both (split at the first newline), in which case an
 * endorsement that parses is also applied to the code's record.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-enrol.h"
#include "devrec.h"
#include "errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_enrol_endorsement en;
	struct devrec rec;
	const char *text, *nl;
	size_t first;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	size--;
	switch (data[0] % 3) {
	case 0:
		(void)agent_enrol_code_parse(text, size,
		    data[0] & 0x80 ? "alice@example.org" : NULL, &rec, NULL);
		break;
	case 1:
		(void)agent_enrol_endorsement_parse(text, size, &en, NULL);
		break;
	default:
		if ((nl = memchr(text, '\n', size)) == NULL)
			break;
		first = (size_t)(nl - text);
		if (agent_enrol_code_parse(text, first, NULL, &rec, NULL) != 0 ||
		    agent_enrol_endorsement_parse(nl + 1, size - first - 1,
		    &en, NULL) != 0)
			break;
		(void)agent_enrol_endorsement_apply(&rec, &en, NULL);
		break;
	}
	return 0;
}

# swtpm-ci/: installing dependencies, running the suite, test tokens.
dist_noinst_SCRIPTS += swtpm-ci/install-deps swtpm-ci/test \
	swtpm-ci/pg-start swtpm-ci/pg-stop
EXTRA_DIST += .ci/run docs

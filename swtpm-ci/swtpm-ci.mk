# swtpm-ci/: installing dependencies, running the suite, test tokens.
dist_noinst_SCRIPTS += swtpm-ci/install-deps swtpm-ci/test
EXTRA_DIST += .ci/run docs

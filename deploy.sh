#!/bin/sh
# Build the image, push it to the component's registry and, on a version tag (x.y.z or vx.y.z),
# make it the version Keboola runs; then update the Developer Portal's properties from
# component_config/. The job's time limit (processTimeout) is set first: the binary is built for
# it, and a release whose limit the portal refuses does not happen.
# Follows https://developers.keboola.com/extend/component/deployment/ (the deploy script there),
# with the Developer Portal CLI (quay.io/keboola/developer-portal-cli-v2).
#
# Needs: docker, and in the environment (never in the repository):
#   KBC_DEVELOPERPORTAL_USERNAME, KBC_DEVELOPERPORTAL_PASSWORD  the vendor's service account
#   KBC_DEVELOPERPORTAL_VENDOR, KBC_DEVELOPERPORTAL_APP          e.g. kds-team, kds-team.app-dbt-cloud-job-trigger
# Usage: ./deploy.sh TAG   (in CI the tag pushed, e.g. 1.4.0 or v1.4.0)
set -eu

TAG="${1:-${GITHUB_REF_NAME:-}}"
if [ -z "$TAG" ]; then
    echo "No tag: ./deploy.sh TAG" >&2
    exit 1
fi
for name in KBC_DEVELOPERPORTAL_USERNAME KBC_DEVELOPERPORTAL_PASSWORD KBC_DEVELOPERPORTAL_VENDOR KBC_DEVELOPERPORTAL_APP; do
    if ! printenv "$name" >/dev/null; then
        echo "$name is not set" >&2
        exit 1
    fi
done

CLI=quay.io/keboola/developer-portal-cli-v2:latest
portal() {
    docker run --rm -e KBC_DEVELOPERPORTAL_USERNAME -e KBC_DEVELOPERPORTAL_PASSWORD "$CLI" "$@"
}

IMAGE=dbt-cloud-job-trigger
docker build --tag "$IMAGE:$TAG" .

docker pull "$CLI"
REPOSITORY=$(portal ecr:get-repository "$KBC_DEVELOPERPORTAL_VENDOR" "$KBC_DEVELOPERPORTAL_APP")
eval "$(portal ecr:get-login "$KBC_DEVELOPERPORTAL_VENDOR" "$KBC_DEVELOPERPORTAL_APP")"

docker tag "$IMAGE:$TAG" "$REPOSITORY:$TAG"
docker push "$REPOSITORY:$TAG"

# A version, with or without a leading v (Keboola's deployment docs accept both).
VERSION='^v\?[0-9]\+\.[0-9]\+\.[0-9]\+$'
if echo "$TAG" | grep -q "$VERSION"; then
    scripts/update_dev_portal_properties.sh processTimeout
    docker tag "$IMAGE:$TAG" "$REPOSITORY:latest"
    docker push "$REPOSITORY:latest"
    portal update-app-repository "$KBC_DEVELOPERPORTAL_VENDOR" "$KBC_DEVELOPERPORTAL_APP" "$TAG" ecr "$REPOSITORY"
    scripts/update_dev_portal_properties.sh
else
    echo "Tag $TAG is not a version (x.y.z or vx.y.z): pushed, but Keboola keeps running the current version."
fi

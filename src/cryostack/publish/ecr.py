"""Amazon ECR through boto3: repositories, lifecycle, and the login for pushes.

Region, profile and credentials come from the standard AWS chain; AWS_ENDPOINT_URL (honoured
by boto3) points the control API elsewhere, e.g. at a moto server in tests.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Optional

import boto3
import botocore.exceptions

from ..errors import BuildError, InputError
from .registry import Registry

LIFECYCLE = {
    "rules": [
        {"rulePriority": 1, "description": "untagged images go after 14 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "keep the newest 30 images of each repository",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30},
         "action": {"type": "expire"}},
    ]
}


class Ecr:
    """One account's ECR in one region."""

    def __init__(self, region: Optional[str] = None, profile: Optional[str] = None):
        # AWS_REGION is what the AWS CLI v2 and most SDKs read; boto3 reads AWS_DEFAULT_REGION.
        region = region or os.environ.get("AWS_REGION")
        try:
            session = boto3.Session(profile_name=profile, region_name=region)
            if not session.region_name:
                raise InputError("ECR: no AWS region (give --region or set AWS_REGION / a profile region)")
            self.client = session.client("ecr")
        except botocore.exceptions.ProfileNotFound as exc:
            raise InputError(f"--profile: {exc}") from None

    def ensure_repository(self, name: str) -> bool:
        """Create the repository (immutable tags, scan on push, lifecycle) if missing; True if created."""
        try:
            self.client.describe_repositories(repositoryNames=[name])
            return False
        except self.client.exceptions.RepositoryNotFoundException:
            pass
        except botocore.exceptions.BotoCoreError as exc:
            raise BuildError(f"ECR: {exc}") from None
        except botocore.exceptions.ClientError as exc:
            raise BuildError(f"ECR: {exc.response['Error'].get('Message', exc)}") from None
        try:
            self.client.create_repository(
                repositoryName=name, imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
                tags=[{"Key": "managed-by", "Value": "cryostack"}],
            )
            self.client.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(LIFECYCLE))
        except botocore.exceptions.ClientError as exc:
            raise BuildError(f"ECR: cannot create {name}: {exc.response['Error'].get('Message', exc)}") from None
        return True

    def registry(self, endpoint: Optional[str] = None, public: bool = False) -> Registry:
        """Push credentials from get-authorization-token; `endpoint` overrides the token's proxy endpoint."""
        try:
            data = self.client.get_authorization_token()["authorizationData"][0]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise BuildError(f"ECR: cannot get an authorization token: {exc}") from None
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return Registry(endpoint or data["proxyEndpoint"], username, password, public=public, immutable_tags=True)

    def describe_digest(self, name: str, tag: str) -> Optional[str]:
        try:
            details = self.client.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])["imageDetails"]
        except botocore.exceptions.ClientError:
            return None
        return details[0]["imageDigest"] if details else None
